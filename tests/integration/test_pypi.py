"""pypi-dependencies: resolved with uv (live PyPI), locked by URL+sha256, installed after the
conda layer without duplicating or overwriting conda packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from envbuild.errors import LockError
from envbuild.lock import solve as lock
from envbuild.project import load_project
from envbuild.recipe.load import load_recipe

from ..conftest import CACHE, Project
from ..support.fakechannel import index

RECIPE = """\
dependencies: ['python 3.11.*', python-dateutil]
pypi-dependencies: [{pypi}]
smoke: {{imports: [{module}]}}
"""


def _lock(project: Project, name: str = "tiny") -> Path:
    p = load_project(project.root)
    return lock.lock_recipe(load_recipe(p.recipe_file(name)), p).path


def test_pypi_packages_locked_with_url_and_hash_and_installed(project: Project) -> None:
    project.write_recipe("tiny", RECIPE.format(pypi="'arrow >=1.3'", module="arrow"))
    path = _lock(project)
    pkgs = yaml.safe_load(path.read_text())["package"]
    pip = {p["name"]: p for p in pkgs if p["manager"] == "pip"}
    conda = {p["name"] for p in pkgs if p["manager"] == "conda"}
    assert "arrow" in pip
    assert "python-dateutil" not in pip and "python-dateutil" in conda  # no duplicate
    for p in pip.values():
        assert p["url"].startswith("https://") and p["url"].endswith(".whl")
        assert len(p["hash"]["sha256"]) == 64
    explicit = (project.root / "locks" / "tiny-linux-64.explicit.txt").read_text()
    assert "@EXPLICIT" in explicit
    project.doit("smoke")
    py = project.root / "envs" / "tiny" / "bin" / "python"
    out = subprocess.run(
        [py, "-I", "-c", "import arrow, dateutil; print(dateutil.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "site-packages/dateutil" in out


def test_pypi_duplicate_of_conda_package_is_refused(project: Project) -> None:
    project.write_recipe("tiny", RECIPE.format(pypi="python-dateutil", module="dateutil"))
    with pytest.raises(
        LockError,
        match=r"'python-dateutil' duplicates the conda package "
        r"'python-dateutil'",
    ):
        _lock(project)


def test_pypi_requirement_that_cannot_resolve(project: Project) -> None:
    project.write_recipe("tiny", RECIPE.format(pypi="'arrow ==0.0.0.0.1'", module="arrow"))
    with pytest.raises(LockError, match=r"cannot lock pypi-dependencies for linux-64"):
        _lock(project)


@pytest.fixture
def channel_with_notsix(channel: Path, tmp_path: Path) -> Path:
    """A conda package 'notsix' that owns site-packages/six.py (the real six wheel, renamed)."""
    own = tmp_path / "own-channel"
    shutil.copytree(channel, own)
    wheels = CACHE / "six-wheel"
    if not list(wheels.glob("six-*.whl")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-d",
                wheels,
                "six==1.16.0",
            ],
            check=True,
            capture_output=True,
        )
    wheel = next(wheels.glob("six-*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "whl2conda",
            "convert",
            wheel,
            "--name",
            "notsix",
            "--out-dir",
            own / "noarch",
            "--format",
            "conda",
            "--no-update-stdrenames",
            "--quiet",
        ],
        check=True,
        capture_output=True,
    )
    return index(own)


def test_pypi_wheel_overwriting_conda_file_fails_build(
    make_project,
    channel_with_notsix: Path,
) -> None:  # type: ignore[no-untyped-def]
    project = make_project(mirror=str(channel_with_notsix))
    project.doit("build")
    before = (project.root / "envs" / "tiny").resolve()
    project.write_recipe(
        "tiny", "dependencies: ['python 3.11.*', notsix]\npypi-dependencies: ['six ==1.16.0']\n"
    )
    proc = project.doit("build", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "PyPI package 'six' overwrites" in out and "conda package 'notsix'" in out
    assert (project.root / "envs" / "tiny").resolve() == before  # previous env stays
