from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from envbuild.errors import ChannelError, LockError
from envbuild.lock import solve as lock
from envbuild.project import load_project
from envbuild.recipe.load import load_recipe

from ..conftest import TINY_RECIPE, Project


def _lock(project: Project, name: str = "tiny") -> Path:
    p = load_project(project.root)
    return lock.lock_recipe(load_recipe(p.recipe_file(name)), p).path


def test_lockfile_is_conda_lock_v1_with_hashes(project: Project) -> None:
    path = _lock(project)
    doc = yaml.safe_load(path.read_text())
    assert doc["version"] == 1
    names = {p["name"] for p in doc["package"]}
    assert {"python", "python-dateutil", "python-tzdata"} <= names
    assert doc["metadata"]["channels"] == [
        {"url": "https://conda.anaconda.org/conda-forge", "used_env_vars": []}
    ]
    for pkg in doc["package"]:  # the canonical channel, never the file:// mirror
        assert pkg["url"].startswith("https://conda.anaconda.org/conda-forge/")
        assert len(pkg["hash"]["md5"]) == 32 and len(pkg["hash"]["sha256"]) == 64
    assert doc["metadata"]["custom_metadata"]["envbuild_fingerprint"]


def test_conda_lock_render_accepts_lockfile(project: Project, tmp_path: Path) -> None:
    path = _lock(project)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "conda_lock",
            "render",
            "-k",
            "explicit",
            "--filename-template",
            "tiny-{platform}",
            str(path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    explicit = next(tmp_path.glob("tiny-*")).read_text()
    assert "@EXPLICIT" in explicit
    assert any(
        ln.startswith("https://conda.anaconda.org/") and "#" in ln for ln in explicit.splitlines()
    )
    # the explicit file envbuild wrote is conda-lock's render, byte for byte
    rendered = next(tmp_path.glob("tiny-*"))  # tiny-<platform>
    assert (path.parent / f"{rendered.name}.explicit.txt").read_text() == explicit


def test_lock_does_not_import_conda_lock_cli(project: Project) -> None:
    """conda-lock's CLI module (its solvers, ensureconda, vendored poetry: ~0.4 s) is not
    imported to lock, write the lockfile and the explicit files."""
    code = (
        "import sys\n"
        "from envbuild.lock import solve as lock\n"
        "from pathlib import Path\n"
        "from envbuild.project import load_project\n"
        "from envbuild.recipe.load import load_recipe\n"
        f"p = load_project(Path({str(project.root)!r}))\n"
        "lock.lock_recipe(load_recipe(p.recipe_file('tiny')), p)\n"
        "print(sorted(m for m in ('conda_lock.conda_lock', 'ensureconda', 'conda_lock.pypi_solver')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
    assert (project.root / "locks" / "tiny.conda-lock.yml").exists()


def test_fingerprint_ignores_cosmetic_edits(project: Project) -> None:
    p = load_project(project.root)
    before = lock.fingerprint(load_recipe(p.recipe_file("tiny")), p)
    project.write_recipe(
        "tiny",
        "# a comment\n"
        + TINY_RECIPE.format(name="tiny").replace(
            "  - python 3.11.*\n  - python-dateutil\n", "  - python-dateutil\n  - python   3.11.*\n"
        ),
    )
    assert lock.fingerprint(load_recipe(p.recipe_file("tiny")), p) == before


def test_fingerprint_changes_with_dependencies_not_mirrors(project: Project) -> None:
    p = load_project(project.root)
    before = lock.fingerprint(load_recipe(p.recipe_file("tiny")), p)
    project.write_recipe(
        "tiny", TINY_RECIPE.format(name="tiny").replace("python-dateutil", "python-dateutil >=2")
    )
    r = load_recipe(p.recipe_file("tiny"))
    assert lock.fingerprint(r, p) != before
    # a mirror is transport: switching it relocks nothing
    (project.root / "envbuild.toml").write_text('[mirrors]\nconda-forge = "elsewhere"\n')
    assert lock.fingerprint(r, load_project(project.root)) == lock.fingerprint(r, p)
    # the channel alias names other channels: that does
    (project.root / "envbuild.toml").write_text('[lock]\nchannel_alias = "https://repo.example"\n')
    assert lock.fingerprint(r, load_project(project.root)) != lock.fingerprint(r, p)


def test_unknown_package_suggests_name(project: Project) -> None:
    project.write_recipe("tiny", "dependencies: [python, python-dateutl]\n")
    with pytest.raises(LockError) as e:
        _lock(project)
    msg = str(e.value)
    assert "tiny.yml: cannot lock for" in msg
    assert "`python-dateutl`: no package named 'python-dateutl'" in msg
    assert "did you mean 'python-dateutil'?" in msg


def test_unsatisfiable_pins_explained(project: Project) -> None:
    project.write_recipe("tiny", "dependencies: ['python 3.11.*', 'python-dateutil <1']\n")
    with pytest.raises(LockError) as e:
        _lock(project)
    msg = str(e.value)
    assert "tiny.yml: `python-dateutil <1`: no version of 'python-dateutil'" in msg
    assert re.search(r"matches \(available: \d+\.\d+\.\d+\)", msg)
    assert "no package named" not in msg


def test_conflicting_pins_explained(project: Project) -> None:
    project.write_recipe("tiny", "dependencies: ['python 3.12.*', 'python-dateutil']\n")
    with pytest.raises(LockError, match=r"(?s)solver explanation:.*python"):
        _lock(project)


def test_unreachable_mirror_names_channel_and_fix(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project(mirror="/nonexistent/channel")
    with pytest.raises(ChannelError) as e:
        _lock(project)
    msg = str(e.value)
    assert "channel 'conda-forge'" in msg and "/nonexistent/channel" in msg
    assert "[mirrors]" in msg


def test_failed_lock_keeps_existing_lockfile(project: Project) -> None:
    path = _lock(project)
    before = path.read_bytes()
    project.write_recipe("tiny", "dependencies: [python, nosuchpkg]\n")
    with pytest.raises(LockError):
        _lock(project)
    assert path.read_bytes() == before
    names = sorted(p.name for p in path.parent.iterdir())  # no temporary left behind
    assert names == ["tiny-linux-64.explicit.txt", "tiny.conda-lock.yml"]
