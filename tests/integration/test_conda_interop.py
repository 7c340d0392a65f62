"""envbuild and a real conda (26.7.1, ``shared/tools/conda-peer``), both ways.

conda -> envbuild: environments conda made (from our explicit file, by its solver with history,
with ``pip install`` on top, relocated by conda-pack + conda-unpack, ``conda env create`` of our
export) are examined by ``doit doctor`` (nothing wrong with a healthy one) and rebuilt by
``doit adopt`` (every package the same). envbuild -> conda: conda installs, updates (dry run)
and removes inside our environments and unpacked tarballs, ``conda doctor`` finds them healthy
(only machine-level checks fail, each named), ``conda env list`` shows them, and our doctor
and verify see what conda changed. Package versions are read from the fixture channel and the
lock, never written here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ..conftest import CACHE, REPO, CondaPeer, Project

RECIPE = """\
name: {name}
channels: [conda-forge]
dependencies:
  - python 3.11.*
  - python-dateutil
  - pip
smoke:
  imports: [dateutil]
"""

# conda doctor's checks about the machine, not the environment: offline, its CA-bundle check
# fetches the channel's URL (a local directory here, so "404"); an unpacked tarball is listed in
# no environments.txt (envbuild registers what it builds, not what someone unpacks)
MACHINE_CHECKS = ("REQUESTS_CA_BUNDLE",)
NOT_REGISTERED = "not listed in the environments.txt"


def _json_out(text: str) -> dict:  # type: ignore[type-arg]
    """The JSON document in doit's output (doit prints its task line first)."""
    return json.JSONDecoder().raw_decode(text[text.index("{") :])[0]


def _records(prefix: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {
        (d := json.loads(f.read_text()))["name"]: d for f in (prefix / "conda-meta").glob("*.json")
    }


def _pypi_wheel(name: str) -> Path:
    """A wheel the fixture channel was converted from (its version is whatever PyPI served)."""
    wheels = sorted((CACHE / "offline-cache" / "wheels").glob(f"{name}-*.whl"))
    assert wheels, f"no {name} wheel in {CACHE}/offline-cache/wheels (the channel fixture's)"
    return wheels[-1]


def _unpack(tarball: Path, dest: Path) -> Path:
    """Unpack a conda-pack tarball into ``dest`` and relocate it with its conda-unpack."""
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(dest)], check=True)
    subprocess.run([str(dest / "bin" / "conda-unpack")], check=True, capture_output=True)
    return dest


def _doctor_failures(peer: CondaPeer, prefix: Path) -> list[str]:
    """The failed checks (lines with ❌) of ``conda doctor -p prefix``."""
    out = peer.run("doctor", "-p", str(prefix), "-v", check=False).stdout
    return [line for line in out.splitlines() if "❌" in line]


def _altered(peer: CondaPeer, prefix: Path) -> set[str]:
    """Files ``conda doctor`` lists as altered (sha256_in_prefix differs)."""
    out = peer.run("doctor", "-p", str(prefix), "-v", check=False).stdout
    block = out.split("Altered Files:", 1)[1].split("✅", 1)[0] if "Altered Files:" in out else ""
    return {line.strip() for line in block.splitlines() if line.startswith("  ")}


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, channel: Path, package_cache: Path
) -> Project:
    """A project with `tiny` (python, python-dateutil, pip) locked, built and exported."""
    root = tmp_path_factory.mktemp("exported") / "proj"
    (root / "recipes").mkdir(parents=True)
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    (root / "envbuild.toml").write_text(
        f'[mirrors]\nconda-forge = "{channel}"\n[paths]\npackage_cache = "{package_cache}"\n'
    )
    project = Project(root)
    project.write_recipe("tiny", RECIPE.format(name="tiny"))
    project.doit("build", "env=tiny")
    project.doit("export", "env=tiny")
    return project


CONDA_MADE = ("solver", "explicit", "explicit-no-pip", "pip", "relocated", "env-create")


@pytest.fixture(scope="module")
def conda_made(
    conda_peer: CondaPeer, exported: Project, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Environments a real conda made: by its solver (history with specs), from our explicit
    file, from it without pip, the solver's with a PyPI wheel pip-installed on top, the
    solver's relocated by conda-pack + conda-unpack, and ``conda env create`` of our
    environment.yml export. The solver runs first, as in a user's warm package cache: the
    explicit installs then take python's record from the cache, with the ``pip`` conda adds
    to its depends (``add_pip_as_python_dependency``, on by default)."""
    import conda_pack

    root = tmp_path_factory.mktemp("conda-made")
    dist = exported.root / "dist"
    envs = {name: root / name for name in CONDA_MADE}
    conda_peer.run(
        "create", "-q", "-y", "-p", str(envs["solver"]), "python=3.11", "python-dateutil", "pip"
    )
    explicit = conda_peer.local_explicit(dist / "tiny-linux-64.explicit.txt", root / "local.txt")
    conda_peer.run("create", "-q", "-y", "-p", str(envs["explicit"]), "--file", str(explicit))
    no_pip = root / "no-pip.txt"
    no_pip.write_text("".join(ln for ln in explicit.open() if "/pip-" not in ln))
    conda_peer.run("create", "-q", "-y", "-p", str(envs["explicit-no-pip"]), "--file", str(no_pip))
    conda_peer.run("create", "-q", "-y", "-p", str(envs["pip"]), "python=3.11", "pip")
    subprocess.run(
        [str(envs["pip"] / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
         "--no-deps", "--disable-pip-version-check", str(_pypi_wheel("threadpoolctl"))],
        check=True, capture_output=True,
    )  # fmt: skip
    packed = root / "solver.tar.gz"
    conda_pack.pack(prefix=str(envs["solver"]), output=str(packed), verbose=False)
    _unpack(packed, envs["relocated"])
    environment_yml = dist / "tiny.environment.yml"
    conda_peer.run(
        "env", "create", "-q", "-y", "-f", str(environment_yml), "-p", str(envs["env-create"])
    )
    return envs


def test_conda_creates_exactly_the_lock_from_our_explicit_file_and_environment_yml(
    conda_peer: CondaPeer, conda_made: dict[str, Path], exported: Project
) -> None:
    explicit = (exported.root / "dist" / "tiny-linux-64.explicit.txt").read_text()
    locked = sorted(ln.rsplit("/", 1)[1] for ln in explicit.splitlines() if ln.startswith("http"))
    for env in ("explicit", "env-create"):
        listed = conda_peer.run("list", "-p", str(conda_made[env]), "--explicit", "--md5").stdout
        assert sorted(ln.rsplit("/", 1)[1] for ln in listed.splitlines() if "://" in ln) == locked


@pytest.mark.parametrize("env", CONDA_MADE)
def test_doctor_finds_nothing_wrong_with_a_healthy_environment_conda_made(
    env: str, conda_made: dict[str, Path], exported: Project
) -> None:
    r = exported.doit("doctor", f"prefix={conda_made[env]}", "--json", check=False)
    report = _json_out(r.stdout)
    problems = [f for f in report["findings"] if f["severity"] == "problem"]
    assert problems == [], problems[:5]
    assert r.returncode == 0
    notes = {(f["kind"], f["package"]) for f in report["findings"]}
    python = _records(conda_made[env])["python"]
    assert "pip" in python["depends"]  # conda's add_pip_as_python_dependency, on by default
    if env == "pip":  # pip's own distribution is conda's; only the wheel pip installed is pip's
        assert notes == {("pip-installed", "threadpoolctl")}
    elif env == "explicit-no-pip":  # conda's solver ignores that pip, its doctor does not
        assert notes == {("implied-pip", f"python {python['version']} {python['build']}")}
    else:
        assert notes == set()


# explicit-no-pip differs from explicit only in what the doctor (run by adopt too) reads
@pytest.mark.parametrize("env", [e for e in CONDA_MADE if e != "explicit-no-pip"])
def test_adopt_rebuilds_an_environment_conda_made_with_the_same_packages(
    env: str, conda_made: dict[str, Path], make_project: Callable[..., Project]
) -> None:
    p = make_project(recipes={})
    p.doit("adopt", f"prefix={conda_made[env]}", "name=old")
    report = json.loads((p.root / "reports" / "old.adopt.json").read_text())
    recipe = yaml.safe_load((p.root / "recipes" / "old.yml").read_text())
    assert recipe["channels"] == ["conda-forge"]  # conda's name, not the alias's file:// URL
    assert [f for f in report["findings"] if f["severity"] == "problem"] == []
    changes = {c["name"]: c["change"] for c in report["changes"]}
    expected = set(_records(conda_made[env]))
    if env == "pip":
        expected.add("threadpoolctl (pypi)")
        assert recipe["pypi-dependencies"] == [
            f"threadpoolctl=={_pypi_wheel('threadpoolctl').name.split('-')[1]}"
        ]
    assert changes == dict.fromkeys(expected, "same")


def test_adopt_without_history_keeps_the_pip_conda_made_python_depend_on(
    conda_made: dict[str, Path], tmp_path: Path
) -> None:
    """conda's pip on python's depends does not hide pip from the leaves (the specs adopt
    takes when conda-meta/history is gone): a rebuild without conda would lose it."""
    from envbuild.prefix import adopt, doctor

    copy = tmp_path / "no-history"
    shutil.copytree(conda_made["solver"], copy, symlinks=True)
    (copy / "conda-meta" / "history").unlink()
    assert "pip" in _records(copy)["python"]["depends"]
    plan = adopt.plan(copy, doctor.read_records(copy))
    assert (plan.source, plan.dependencies) == ("leaves", ("pip", "python-dateutil"))


@pytest.fixture(scope="module")
def ours(exported: Project, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Our environment and our tarball, unpacked elsewhere and relocated by conda-unpack."""
    exported.doit("pack", "env=tiny")
    tarball = next((exported.root / "dist").glob("tiny-linux-64.tar.*"))
    unpacked = _unpack(tarball, tmp_path_factory.mktemp("ours") / "unpacked")
    return {"env": exported.root / "envs" / "tiny", "unpacked": unpacked, "tarball": tarball}


@pytest.mark.parametrize("where", ["env", "unpacked"])
def test_conda_installs_updates_and_removes_inside_ours(
    where: str, ours: dict[str, Path], conda_peer: CondaPeer
) -> None:
    prefix = str(ours[where])
    assert (
        "threadpoolctl"
        in conda_peer.run("install", "-p", prefix, "threadpoolctl", "--dry-run").stdout
    )
    conda_peer.run("update", "-p", prefix, "--all", "--dry-run")
    assert (
        "python-dateutil"
        in conda_peer.run("remove", "-p", prefix, "python-dateutil", "--dry-run").stdout
    )
    history = conda_peer.run("env", "export", "-p", prefix, "--from-history").stdout
    assert len(yaml.safe_load(history)["dependencies"]) == 3  # the recipe's specs


def test_conda_doctor_finds_our_environment_healthy(
    ours: dict[str, Path], conda_peer: CondaPeer
) -> None:
    failed = _doctor_failures(conda_peer, ours["env"])
    assert [f for f in failed if not any(m in f for m in MACHINE_CHECKS)] == []


def test_conda_doctor_on_our_unpacked_tarball_alters_what_it_does_in_conda_own(
    ours: dict[str, Path], conda_made: dict[str, Path], conda_peer: CondaPeer
) -> None:
    """After conda-unpack, conda doctor calls the files conda-unpack rewrote "altered" in
    conda's own environment of the same packages after the same steps, because their records
    keep the build prefix's sha256_in_prefix. Our tarball's records carry no
    sha256_in_prefix for prefix-rewritten files (its value names the build's path: README,
    "Reproducible artifacts"), nor for symlinks and entry points (as in conda's records), so
    conda doctor sees nothing altered in ours: never more than in conda's own (issue 21, 5)."""
    failed = _doctor_failures(conda_peer, ours["unpacked"])
    allowed = (*MACHINE_CHECKS, NOT_REGISTERED, "Altered Files")
    assert [f for f in failed if not any(m in f for m in allowed)] == []
    theirs = _altered(conda_peer, conda_made["relocated"])
    assert theirs, "conda's own relocated environment shows its rewritten files as altered"
    assert _altered(conda_peer, ours["unpacked"]) == set()


def test_our_doctor_finds_our_unpacked_relocated_tarball_healthy(
    ours: dict[str, Path], exported: Project
) -> None:
    r = exported.doit("doctor", f"prefix={ours['unpacked']}", "--json", check=False)
    assert _json_out(r.stdout)["findings"] == []
    assert r.returncode == 0
    config = ours["unpacked"] / "bin" / "python3.11-config"
    out = subprocess.run([str(config), "--prefix", "--ldflags"], capture_output=True, text=True)
    assert out.stdout.split()[0] == str(ours["unpacked"])
    assert "/" + str(ours["env"].parent) not in out.stdout


def test_records_are_faithful_and_no_cache_tag_is_shipped(ours: dict[str, Path]) -> None:
    for prefix in (ours["env"], ours["unpacked"]):
        assert not (prefix / "CACHEDIR.TAG").exists()
        for rec in _records(prefix).values():
            index = json.loads(
                (Path(rec["extracted_package_dir"]) / "info" / "index.json").read_text()
            ) if prefix == ours["env"] else None  # fmt: skip
            for key, value in (index or {}).items():
                if key in ("timestamp", "build_number", "depends", "constrains", "license"):
                    assert rec[key] == value, (rec["name"], key)  # python's timestamp is 0
            links = [e for e in rec["paths_data"]["paths"] if e.get("path_type") == "softlink"]
            assert not [e["_path"] for e in links if "sha256_in_prefix" in e]
    listed = subprocess.run(["tar", "-tf", str(ours["tarball"])], capture_output=True, text=True)
    assert "CACHEDIR.TAG" not in listed.stdout.split()


def test_our_doctor_and_verify_see_what_conda_changed_in_our_environment(
    make_project: Callable[..., Project], conda_peer: CondaPeer
) -> None:
    p = make_project(recipes={"tiny": RECIPE.format(name="tiny")})
    p.doit("build", "env=tiny")
    prefix = str(p.root / "envs" / "tiny")
    conda_peer.run("install", "-q", "-y", "-p", prefix, "threadpoolctl")
    r = p.doit("verify", "env=tiny", check=False)
    assert r.returncode != 0 and "extra-package" in r.stdout and "threadpoolctl" in r.stdout
    assert "missing-file" not in r.stdout  # conda's noarch record read with its mapped paths
    assert p.doit("doctor", f"prefix={prefix}").returncode == 0
    conda_peer.run("remove", "-q", "-y", "-p", prefix, "python-dateutil")
    assert p.doit("verify", "env=tiny", check=False).returncode != 0
    report = json.loads((p.root / "reports" / "tiny.verify.json").read_text())
    found = {(f["kind"], f["package"]) for f in report["findings"]}
    assert {("extra-package", "threadpoolctl"), ("missing-package", "python-dateutil")} <= found
    assert {kind for kind, _ in found} == {"extra-package", "missing-package"}  # no file noise


def test_environments_are_registered_where_conda_lists_them(
    make_project: Callable[..., Project], conda_peer: CondaPeer
) -> None:
    p = make_project(recipes={"tiny": RECIPE.format(name="tiny"), "other": None})
    p.doit("build")
    tiny, other = p.root / "envs" / "tiny", p.root / "envs" / "other"
    lines = conda_peer.environments_txt.read_text().splitlines()
    assert str(tiny) in lines and str(other) in lines
    assert "✅ The environment is listed" in conda_peer.run("doctor", "-p", str(tiny)).stdout
    assert str(tiny) in _conda_env_list(conda_peer)
    activate = conda_peer.run("shell.posix", "activate", str(tiny)).stdout
    assert f"export CONDA_PREFIX='{tiny}'" in activate
    # `doit clean build:tiny` removes the environment: conda no longer lists it
    p.doit("clean", "build:tiny")
    assert str(tiny) not in conda_peer.environments_txt.read_text().splitlines()
    p.doit("build", "env=tiny")
    assert str(tiny) in conda_peer.environments_txt.read_text().splitlines()
    # removing a recipe: gc takes its environment out; turning registration off: all of ours
    (p.root / "recipes" / "other.yml").unlink()
    assert f"removed {other}" in p.doit("gc").stdout
    lines = conda_peer.environments_txt.read_text().splitlines()
    assert str(other) not in lines and str(tiny) in lines
    with (p.root / "envbuild.toml").open("a") as f:
        f.write("[builds]\nregister = false\n")
    p.doit("gc")
    assert str(tiny) not in conda_peer.environments_txt.read_text().splitlines()


def _conda_env_list(peer: CondaPeer) -> str:
    """``conda env list``. As root, conda reads every account's home from the password
    database rather than ``$HOME``; the test's scratch home is where a user's registry would
    be, so conda is told it is not running as an administrator."""
    if os.geteuid() != 0:
        return peer.run("env", "list").stdout
    code = (
        "import sys, conda.core.envs_manager as m; m.is_admin = lambda: False; "
        "from conda.cli.main import main; sys.argv = ['conda', 'env', 'list']; sys.exit(main())"
    )
    python = peer.exe.parent / "python"
    r = subprocess.run([str(python), "-c", code], env=peer.env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_copied_project_rebuilds_where_it_is_now(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    p = make_project()
    p.doit("build")
    copy = Project(tmp_path / "copy")
    shutil.copytree(p.root, copy.root, symlinks=True)
    assert "build:tiny" in Project.executed(copy.doit("build"))
    copy.doit("verify")  # its files name the copy, not the original
    assert "build:tiny" not in Project.executed(copy.doit("build"))
