"""verify: build real environments, break each a different way, check the report names it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envbuild.install.build import read_marker
from envbuild.lock.solve import read_lockfile
from envbuild.prefix import verify
from envbuild.recipe.load import current_subdir

from ..conftest import TINY_RECIPE, Project

RECIPE = TINY_RECIPE.format(name="tiny").replace(
    "  - python-dateutil\n", "  - python-dateutil\n  - threadpoolctl\n"
)
SP = "lib/python3.11/site-packages"


@pytest.fixture
def env(project: Project) -> Path:
    project.write_recipe("tiny", RECIPE)
    project.doit("build")
    return (project.root / "envs" / "tiny").resolve()


def findings(project: Project) -> list[verify.Finding]:
    prefix = project.root / "envs" / "tiny"
    info = read_marker(prefix)
    lock = read_lockfile(project.root / "locks" / "tiny.conda-lock.yml")
    return verify.verify_prefix(prefix, lock, current_subdir(), info.prefix if info else "")


def kinds(project: Project) -> set[tuple[str, str]]:
    return {(f.kind, f.package) for f in findings(project)}


def uv_install(env: Path, *args: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "uv",
            "pip",
            "install",
            "--python",
            str(env / "bin" / "python"),
            "--no-config",
            *args,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_clean_environment_has_no_findings(project: Project, env: Path) -> None:
    assert findings(project) == []
    proc = project.doit("verify")
    assert "no findings" in proc.stdout
    report = json.loads((project.root / "reports" / "tiny.verify.json").read_text())
    assert report["status"] == "clean" and report["findings"] == []


def test_deleted_file(project: Project, env: Path) -> None:
    (env / SP / "dateutil" / "tz" / "tz.py").unlink()
    assert findings(project) == [
        verify.Finding("missing-file", "python-dateutil", f"{SP}/dateutil/tz/tz.py", "deleted")
    ]


def test_edited_file_and_edited_prefix_file(project: Project, env: Path) -> None:
    with (env / SP / "threadpoolctl.py").open("a") as f:
        f.write("# edited by hand\n")
    sysconfig = next((env / "lib" / "python3.11").glob("_sysconfigdata_*.py"))
    sysconfig.write_text(sysconfig.read_text().replace("'prefix'", "'prefix' ", 1))
    assert {(f.kind, f.package, Path(f.path).name) for f in findings(project)} == {
        ("modified-file", "threadpoolctl", "threadpoolctl.py"),
        ("modified-file", "python", sysconfig.name),
    }


def test_pip_overwrite_and_extra_pip_package(project: Project, env: Path) -> None:
    uv_install(env, "--no-deps", "python-dateutil==2.9.0.post0")
    found = findings(project)
    assert ("extra-package", "python-dateutil") in {(f.kind, f.package) for f in found}
    overwrites = [f for f in found if f.kind == "pip-overwrite"]
    assert overwrites and all(f.package == "python-dateutil" for f in overwrites)
    assert "overwritten by pip package 'python-dateutil'" in overwrites[0].detail


def test_missing_and_mismatched_and_extra_conda_packages(project: Project, env: Path) -> None:
    meta = env / "conda-meta"
    tz = next(meta.glob("python-tzdata-*.json"))
    shutil.move(tz, tz.with_name("elsewhere.bak"))
    tp = next(meta.glob("threadpoolctl-*.json"))
    data = json.loads(tp.read_text())
    data["version"] = "0.0.1"
    tp.write_text(json.dumps(data))
    extra = dict(data, name="stowaway", version="1.0", files=[], paths_data={"paths": []})
    (meta / "stowaway-1.0-0.json").write_text(json.dumps(extra))
    assert kinds(project) == {
        ("missing-package", "python-tzdata"),
        ("version-mismatch", "threadpoolctl"),
        ("extra-package", "stowaway"),
        # its files stay behind, unowned: a stray distribution
        ("extra-package", "tzdata"),
    }


def test_editable_install(project: Project, env: Path, tmp_path: Path) -> None:
    src = tmp_path / "devpkg"
    (src / "devpkg").mkdir(parents=True)
    (src / "devpkg" / "__init__.py").write_text("")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "devpkg"\nversion = "0.1"\n'
    )
    uv_install(env, "-e", str(src))
    assert {("editable", "devpkg"), ("extra-package", "devpkg")} <= kinds(project)


def test_moved_prefix(project: Project, env: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved-env"
    shutil.copytree(env, moved, symlinks=True)
    lock = read_lockfile(project.root / "locks" / "tiny.conda-lock.yml")
    found = verify.verify_prefix(moved, lock, current_subdir(), str(env))
    assert [f.kind for f in found] == ["prefix-moved"]


def test_failed_verification_makes_build_recreate(project: Project, env: Path) -> None:
    (env / SP / "threadpoolctl.py").write_text("raise SystemExit('corrupted')\n")
    proc = project.doit("verify", check=False)
    assert proc.returncode != 0
    assert "modified-file" in proc.stdout and "threadpoolctl" in proc.stdout
    assert "does not match" in proc.stdout + proc.stderr
    assert Project.executed(project.doit("build")) == ["build:tiny"]
    fresh = (project.root / "envs" / "tiny").resolve()
    assert fresh != env
    assert findings(project) == []
    project.doit("verify")
    assert Project.executed(project.doit("build")) == []
