"""Issue 10: `doit doctor prefix=PATH` on environments rotted the way the seeds describe it
happening (a real environment installed with py-rattler, then real pip installs, deleted and
edited files, record changes of the kind forced installs leave, a .pth outside, a moved
prefix), and `doit adopt` from such an environment to a recipe that locks, builds and passes
its smoke checks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from envbuild.prefix import doctor
from envbuild.prefix.findings import ADVICE, DoctorError

from ..conftest import CACHE, Project, pinned

ROT = """\
dependencies: ['python 3.11.*', python-dateutil, threadpoolctl, pip]
smoke: {imports: [dateutil]}
"""
WHEELS = CACHE / "offline-cache" / "wheels"
CLOUDPICKLE = pinned("cloudpickle")  # pinned in pins/offline-tests.txt, never "today's"
TPC = pinned("threadpoolctl")
PIP = pinned("pip")


def _pip(prefix: Path, wheel: str, *extra: str) -> None:
    """A real ``pip install`` of a wheel from the offline cache, as users do."""
    (path,) = WHEELS.glob(wheel)  # the channel fixture downloaded it (pinned, hash-checked)
    subprocess.run(
        [prefix / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index",
         "--no-compile", "--root-user-action=ignore", *extra, str(path)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip


def _record(prefix: Path, name: str) -> Path:
    (path,) = (prefix / "conda-meta").glob(f"{name}-[0-9]*.json")
    return path


def _edit_record(prefix: Path, name: str, **changes: Any) -> None:
    path = _record(prefix, name)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def rotted(tmp_path_factory: pytest.TempPathFactory, channel: Path) -> tuple[Project, Path]:
    """A project whose environment ``rot`` was built for real, then rotted in place."""
    root = tmp_path_factory.mktemp("doctor") / "proj"
    (root / "recipes").mkdir(parents=True)
    shutil.copy(Path(__file__).parent.parent.parent / "dodo.py", root / "dodo.py")
    (root / "envbuild.toml").write_text(  # other-channel: where the swapped pip came from
        f'[mirrors]\nconda-forge = "{channel}"\nother-channel = "{channel}"\n'
        f'[paths]\npackage_cache = "{root / "pkgs"}"\n'
    )
    p = Project(root)
    p.write_recipe("rot", ROT)
    p.doit("build", "env=rot")
    prefix = (root / "envs" / "rot").resolve()
    site = prefix / "lib" / "python3.11" / "site-packages"
    # pip install over a conda package (its files and metadata replaced), and beside them
    _pip(prefix, f"threadpoolctl-{TPC}-*.whl", "--force-reinstall")
    _pip(prefix, f"cloudpickle-{CLOUDPICKLE}-*.whl")
    # an interrupted install: the record stays, the files are gone
    tzdata = json.loads(_record(prefix, "python-tzdata").read_text())
    for entry in tzdata["paths_data"]["paths"]:
        (prefix / entry["_path"]).unlink(missing_ok=True)
    # a file edited in place
    with (site / "dateutil" / "__init__.py").open("a") as f:
        f.write("# patched by hand\n")
    # a package swapped for one from another channel (conda install -c other pip)
    _edit_record(prefix, "pip", channel="https://conda.anaconda.org/other-channel",
                 url=f"https://conda.anaconda.org/other-channel/noarch/pip-{PIP}-py_0.conda")  # fmt: skip
    # a dependency changed alone (python forced to another version): others' depends break
    _edit_record(prefix, "python", version="3.9.18")
    # a forced install over a constraint
    _edit_record(prefix, "python-dateutil", constrains=["threadpoolctl <3"])
    # a .pth pointing outside, an editable install, two dist-infos for one distribution
    (site / "elsewhere.pth").write_text("/opt/elsewhere/lib\n")
    editable = site / "mytool-0.1.dist-info"
    editable.mkdir()
    (editable / "METADATA").write_text("Metadata-Version: 2.1\nName: mytool\nVersion: 0.1\n")
    (editable / "INSTALLER").write_text("pip\n")
    (editable / "RECORD").write_text("mytool-0.1.dist-info/METADATA,,\n")
    (editable / "direct_url.json").write_text(
        json.dumps({"url": (root.parent / "mytool").as_uri(), "dir_info": {"editable": True}})
    )  # a source tree outside the prefix, as `pip install -e` leaves it
    (site / "__editable__.mytool-0.1.pth").write_text(f"{root.parent / 'mytool' / 'src'}\n")
    stale = site / "cloudpickle-3.0.0.dist-info"
    shutil.copytree(site / f"cloudpickle-{CLOUDPICKLE}.dist-info", stale)
    meta = (stale / "METADATA").read_text().replace(f"Version: {CLOUDPICKLE}", "Version: 3.0.0")
    (stale / "METADATA").write_text(meta)
    return p, prefix


@pytest.fixture(scope="module")
def findings(rotted: tuple[Project, Path]) -> list[doctor.Finding]:
    return doctor.examine(rotted[1])


EXPECTED = [
    ("half-installed", "python-tzdata", ""),
    ("modified-file", "python-dateutil", "dateutil/__init__.py"),
    ("missing-file", "threadpoolctl", "__pycache__/threadpoolctl"),  # pip dropped our bytecode
    ("pip-overwrote", "threadpoolctl", f"threadpoolctl-{TPC}.dist-info"),
    ("pip-installed", "cloudpickle", f"cloudpickle-{CLOUDPICKLE}.dist-info"),
    ("duplicate-dist", "cloudpickle", "cloudpickle-3"),
    ("editable", "mytool", "mytool-0.1.dist-info"),
    ("path-outside", "", "elsewhere.pth"),
    ("path-outside", "", "__editable__.mytool-0.1.pth"),
    ("unsatisfied-depends", f"pip {PIP}", ""),
    ("unsatisfied-depends", "python-dateutil", ""),
    ("violated-constrains", "python-dateutil", ""),
    ("mixed-channels", "", ""),
    ("other-channel", "pip", ""),
]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "package", "path"), EXPECTED)
def test_doctor_finds_each_kind_of_rot(
    findings: list[doctor.Finding], kind: str, package: str, path: str
) -> None:
    hits = [f for f in findings if f.kind == kind and package in f.package and path in f.path]
    assert hits, f"no {kind} finding for {package or path}:\n" + "\n".join(map(str, findings))
    assert all(h.advice == ADVICE[kind] for h in hits)


@pytest.mark.slow
def test_doctor_command_prints_a_table_writes_json_and_fails(rotted: tuple[Project, Path]) -> None:
    p, prefix = rotted
    proc = p.doit("doctor", f"prefix={prefix}", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert "half-installed" in proc.stdout and "what to do:" in proc.stdout
    (path,) = (p.root / "reports" / "doctor").glob(f"{prefix.name}-*.json")
    report = json.loads(path.read_text())
    assert report["counts"]["pip-overwrote"] >= 1 and report["prefix"] == str(prefix)
    as_json = p.doit("doctor", "--json", f"prefix={prefix}", check=False)
    payload = as_json.stdout[as_json.stdout.index("{") : as_json.stdout.rindex("}") + 1]
    assert json.loads(payload)["counts"] == report["counts"]


@pytest.mark.slow
def test_a_clean_build_and_a_relocated_tarball_have_no_findings(
    make_project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    p = make_project()
    p.doit("pack")
    assert p.doit("doctor", f"prefix={p.root / 'envs' / 'tiny'}").returncode == 0
    assert (p.root / "envs" / "tiny" / "bin" / "2to3").resolve().is_file()  # the link resolves
    tarball = next((p.root / "dist").glob("tiny-*.tar.*"))
    from envbuild.ship.pack import extract

    moved = tmp_path / "unpacked-elsewhere"
    extract(tarball, moved)
    # conda-pack unpacked but conda-unpack not run: a prefix moved without relocation
    stale = doctor.examine(moved)
    assert [f.kind for f in stale] == ["moved-prefix"], stale
    subprocess.run([moved / "bin" / "python", moved / "bin" / "conda-unpack"], check=True)
    # relocated files match their records again (python3.11-config, which conda-unpack
    # leaves alone, names no prefix in the repackaged interpreter)
    assert doctor.examine(moved) == []
    copied = tmp_path / "copied"  # `cp -a` of a built environment: moved, never relocated
    shutil.copytree((p.root / "envs" / "tiny").resolve(), copied, symlinks=True)
    assert [f.kind for f in doctor.examine(copied)] == ["moved-prefix"]


@pytest.mark.slow
def test_a_missing_shared_library_and_a_broken_interpreter(
    make_project,  # type: ignore[no-untyped-def]
) -> None:
    p = make_project()
    p.doit("build")
    prefix = (p.root / "envs" / "tiny").resolve()
    shared = sorted((prefix / "lib").glob("libpython3.[0-9]*.so*"))
    if not shared:
        pytest.skip("this interpreter is linked statically: no libpython to remove")
    for lib in shared:
        lib.unlink()
    libpython = shared[-1]
    found = doctor.examine(prefix)
    # not found, or found outside the prefix (a system libpython): either way, said
    assert any(f.kind == "shared-library" and f.detail.startswith(libpython.name) for f in found)
    assert any(f.kind == "interpreter" for f in found), found


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("plain", "not a conda prefix (no conda-meta/)"),
        ("platform", "its packages are for osx-arm64; this machine is"),
    ],
)
def test_bad_prefixes_are_clear_errors(
    make_project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    setup: str,
    message: str,
) -> None:
    prefix = tmp_path / "env"
    prefix.mkdir()
    if setup != "plain":
        (prefix / "conda-meta").mkdir()
        record = {"name": "x", "version": "1", "build": "0", "build_number": 0,
                  "subdir": "osx-arm64", "depends": [], "channel": "conda-forge",
                  "fn": "x-1-0.conda", "files": [], "paths_data": {"paths": [], "paths_version": 1},
                  "url": "https://conda.anaconda.org/conda-forge/osx-arm64/x-1-0.conda"}  # fmt: skip
        text = "{not json" if setup == "malformed" else json.dumps(record)
        (prefix / "conda-meta" / "x-1-0.json").write_text(text)
    with pytest.raises(DoctorError, match=None) as e:
        doctor.examine(prefix)
    assert message in str(e.value) and str(prefix) in str(e.value)
    p = make_project()
    proc = p.doit("doctor", f"prefix={prefix}", check=False)
    assert proc.returncode != 0 and message in proc.stdout and "Traceback" not in proc.stdout


@pytest.mark.slow
def test_adopt_turns_the_rotted_environment_into_a_rebuilt_one(
    rotted: tuple[Project, Path],
) -> None:
    p, prefix = rotted
    before = {f: f.stat().st_mtime_ns for f in (prefix / "conda-meta").iterdir()}
    out = p.doit("adopt", f"prefix={prefix}", "name=adopted").stdout
    assert "specs from its history" in out and "rebuilt adopted" in out
    recipe = yaml.safe_load((p.root / "recipes" / "adopted.yml").read_text())
    assert recipe["dependencies"] == ["python 3.11.*", "python-dateutil", "threadpoolctl", "pip"]
    assert recipe["channels"] == ["conda-forge", "other-channel"]
    assert recipe["pypi-dependencies"] == [f"cloudpickle=={CLOUDPICKLE}"]  # not the editable one
    assert {"dateutil", "cloudpickle", "threadpoolctl"} <= set(recipe["smoke"]["imports"])
    report = json.loads((p.root / "reports" / "adopted.adopt.json").read_text())
    assert {"half-installed", "pip-overwrote", "modified-file"} <= {
        f["kind"] for f in report["findings"]}  # fmt: skip
    changes = {c["name"]: c["change"] for c in report["changes"]}
    assert changes["python"] == "upgraded"  # the record said 3.9.18; rebuilt: 3.11
    assert changes["python-dateutil"] == "same" and changes["cloudpickle (pypi)"] == "same"
    assert "## Rebuilt environment vs the old one" in (
        p.root / "reports" / "adopted.adopt.md").read_text()  # fmt: skip
    assert p.doit("doctor", f"prefix={p.root / 'envs' / 'adopted'}").returncode == 0
    assert {f: f.stat().st_mtime_ns for f in (prefix / "conda-meta").iterdir()} == before
    again = p.doit("adopt", f"prefix={prefix}", "name=adopted", check=False)
    assert again.returncode != 0 and "exists; choose another name, or add force=1" in again.stdout


@pytest.mark.slow
def test_without_history_adopt_takes_the_packages_nothing_depends_on(
    rotted: tuple[Project, Path], tmp_path: Path
) -> None:
    from envbuild.prefix import adopt

    _, prefix = rotted
    copy = tmp_path / "no-history"
    shutil.copytree(prefix, copy, symlinks=True)
    (copy / "conda-meta" / "history").unlink()  # as pixi, conda-pack and rattler leave it
    plan = adopt.plan(copy, doctor.read_records(copy))
    assert plan.source == "leaves"
    assert plan.dependencies == ("pip", "python-dateutil", "threadpoolctl")
