"""Issue 30: the offline channel keeps a wheel's marker-conditional requirements that hold for
the channel's interpreter and platform (as pip evaluates them), and drops the others."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from packaging.markers import default_environment

from envbuild.errors import ChannelError
from envbuild.offline.archives import Members
from envbuild.offline.requires import (
    Dist,
    Target,
    added_depends,
    conda_spec,
    solver_spelling,
    wheel_requires,
)

PY311 = Target("3.11.7", "linux-64")

METADATA = """\
Metadata-Version: 2.1
Name: jupyter-server
Version: 2.14.0
Requires-Dist: anyio>=3.1.0
Requires-Dist: overrides>=5.0; python_version < '3.12'
Requires-Dist: pywinpty>=2.0.1; os_name == 'nt'
Requires-Dist: uvloop; sys_platform == 'linux' and platform_machine == 'x86_64'
Requires-Dist: backports-zoneinfo; python_full_version < '3.9'
Requires-Dist: pytest>=7; extra == 'test'

A description that says Requires-Dist: nothing.
"""


def _wheel(tmp_path: Path, metadata: str = METADATA) -> Path:
    wheel = tmp_path / "jupyter_server-2.14.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("jupyter_server/__init__.py", "")
        zf.writestr("jupyter_server-2.14.0.dist-info/METADATA", metadata)
    return wheel


def _dists(requires: tuple[str, ...], **others: tuple[str, ...]) -> dict[str, Dist]:
    dists = {"jupyter-server": Dist("2.14.0", "jupyter-server", requires)}
    for name in ("anyio", "overrides", "pywinpty", "uvloop", "backports-zoneinfo", "pytest"):
        dists[name] = Dist("8.0", name, others.get(name.replace("-", "_"), ()))
    return dists


def test_a_wheels_metadata_gives_the_depends_that_hold(tmp_path: Path) -> None:
    requires = wheel_requires(_wheel(tmp_path))
    assert requires[1] == "overrides>=5.0; python_version < '3.12'"
    added = added_depends(_dists(requires), PY311)
    # kept: the markers that hold for CPython 3.11.7 on linux-64; the unconditional anyio is
    # whl2conda's already; Windows, Python < 3.9 and the test extra are dropped
    assert added["jupyter-server"].add == ("overrides >=5.0", "uvloop ")
    assert added_depends(_dists(requires), Target("3.12.1", "linux-64"))["jupyter-server"].add == (
        "uvloop ",
    )
    on_windows = added_depends(_dists(requires), Target("3.11.7", "win-64"))
    assert on_windows["jupyter-server"].add == ("overrides >=5.0", "pywinpty >=2.0.1")


def test_the_full_python_version_is_the_channels() -> None:
    dists = _dists(("overrides; python_full_version >= '3.11.4'",))
    assert added_depends(dists, PY311)["jupyter-server"].add == ("overrides ",)
    assert added_depends(dists, Target("3.11.0", "linux-64"))["jupyter-server"].add == ()


def test_an_extra_is_kept_only_when_the_pins_ask_for_it() -> None:
    dists = _dists(("pytest>=7; extra == 'test'", "anyio; extra == 'test' and os_name == 'nt'"))
    assert added_depends(dists, PY311)["jupyter-server"].add == ()
    asked = added_depends(dists, PY311, ["jupyter-server[test]"])
    assert asked["jupyter-server"].add == ("pytest >=7",)


def test_a_requirement_with_an_extra_brings_what_the_extra_adds() -> None:
    # jupyter-server requires anyio[trio]; anyio's trio extra requires uvloop (and, with the
    # python marker that holds anyway, overrides, which anyio has without the extra too)
    dists = _dists(
        ("anyio[trio]>=3",),
        anyio=("uvloop; extra == 'trio'", "overrides; python_version < '3.12'"),
    )
    added = added_depends(dists, PY311)
    assert added["jupyter-server"].add == ("uvloop ",)
    assert added["anyio"].add == ("overrides ",)


def test_a_kept_requirement_that_is_not_pinned_is_named(tmp_path: Path) -> None:
    dists = _dists(("tomli>=1; python_version < '3.12'", "exceptiongroup; os_name == 'nt'"))
    with pytest.raises(ChannelError, match=r"pins/x.txt: jupyter-server 2.14.0 requires") as e:
        added_depends(dists, PY311, where="pins/x.txt")
    assert "tomli is not pinned" in str(e.value)
    assert "exceptiongroup" not in str(e.value)  # dropped: not needed on linux


def test_a_kept_requirement_the_pinned_version_does_not_allow_is_named() -> None:
    dists = _dists(("overrides<7; python_version < '3.12'",))
    with pytest.raises(ChannelError, match=r"requires .overrides<7.*overrides==8.0 is pinned"):
        added_depends(dists, PY311)


@pytest.mark.parametrize(
    ("requirement", "spec"),
    [
        ("a~=1.2.3; os_name == 'nt'", "a >=1.2.3,==1.2.*"),
        ("a (===1.0)", "a ==1.0"),
        ("A_b<3, >=v1", "a-b <3,>=1"),
        ("a[x]", "a "),
    ],
)
def test_requirements_are_spelled_as_whl2conda_spells_them(requirement: str, spec: str) -> None:
    assert conda_spec(requirement, {"a-b": "a-b"}) == spec


def test_match_specs_are_spelled_as_the_solver_reads_them() -> None:
    # rattler reads ==4.0.* inside an and-list as ==4.0: no 4.0.16 would match
    assert solver_spelling("w >=4.0.16,==4.0.*") == "w >=4.0.16,4.0.*"
    assert solver_spelling("j !=6.0.*,>=5.1") == "j !=6.0.*,>=5.1"
    assert solver_spelling("packaging ") == "packaging "


def test_what_whl2conda_kept_for_another_python_is_dropped() -> None:
    # opencv's cp37-abi3 wheel: whl2conda evaluates its markers for Python 3.7
    dists = _dists(("numpy<2.0; python_version < '3.9'", "numpy>=2; python_version >= '3.9'"))
    dists["numpy"] = Dist("2.3.0", "numpy", ())
    change = added_depends(dists, PY311)["jupyter-server"]
    assert (change.add, change.drop) == (("numpy >=2",), ("numpy <2.0",))


def test_the_environment_is_the_targets_not_the_hosts() -> None:
    env = Target("3.11.7", "linux-aarch64").environment("x")
    assert set(env) == {*default_environment(), "extra"}
    assert (env["platform_machine"], env["python_version"], env["extra"]) == (
        "aarch64",
        "3.11",
        "x",
    )
    with pytest.raises(ChannelError, match="no marker environment known for platform zos-z"):
        Target("3.11.7", "zos-z").environment()


def test_a_wheel_without_metadata_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "x-1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("x/__init__.py", "")
    with pytest.raises(ChannelError, match=r"x-1-py3-none-any.whl: expected one \*.dist-info"):
        wheel_requires(wheel)


def test_entry_points_lose_their_deprecated_extras() -> None:
    import json
    import tarfile

    from envbuild.offline.repairs import repaired

    doc = {"noarch": {"type": "python", "entry_points": ["watchmedo = w.cli:main [watchmedo]"]}}
    info: Members = [(tarfile.TarInfo("info/link.json"), json.dumps(doc).encode())]
    ((member, data),) = repaired([], info, "3.11")[1]
    assert json.loads(data or b"")["noarch"]["entry_points"] == ["watchmedo = w.cli:main"]
    assert member.size == len(data or b"")
    plain = json.dumps({"noarch": {"entry_points": ["a = b:c"]}}).encode()
    assert repaired([], [(tarfile.TarInfo("info/link.json"), plain)], "3.11")[1][0][1] is plain


def test_a_binary_wheel_for_any_python3_moves_to_the_channels_site_packages() -> None:
    import json
    import tarfile

    wrong = "lib/python3/site-packages/lightgbm/__init__.py"
    pkg: Members = [(tarfile.TarInfo(wrong), b""), (tarfile.TarInfo("bin/x"), b"")]
    info: Members = [
        (tarfile.TarInfo("info/files"), f"bin/x\n{wrong}\n".encode()),
        (tarfile.TarInfo("info/paths.json"), json.dumps({"paths": [{"_path": wrong}]}).encode()),
    ]
    from envbuild.offline.repairs import repaired

    pkg, info = repaired(pkg, info, "3.11")
    right = "lib/python3.11/site-packages/lightgbm/__init__.py"
    assert [m.name for m, _ in pkg] == [right, "bin/x"]
    assert info[0][1] == f"bin/x\n{right}\n".encode()
    assert json.loads(info[1][1] or b"")["paths"] == [{"_path": right}]
