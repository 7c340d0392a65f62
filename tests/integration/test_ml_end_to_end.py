"""The main job on real packages: recipes/ml.yml (numpy, pandas, scikit-learn converted from
PyPI wheels) through every stage. Slow on the first run (downloads and converts ~75 MB of
wheels, cached afterwards); CI runs it."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from envbuild.offline.channel import build_offline_channel
from envbuild.recipe.load import current_subdir
from envbuild.ship import pack

from ..conftest import CACHE, DEMO_PINS, REPO, Project, cache_lock


@pytest.fixture(scope="session")
def ml_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ml-channel") / "channel"
    with cache_lock():
        return build_offline_channel(root, CACHE / "offline-cache", DEMO_PINS)


@pytest.mark.slow
def test_ml_recipe_end_to_end(make_project, ml_channel: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project: Project = make_project(mirror=str(ml_channel), recipes={})
    shutil.copy(REPO / "recipes" / "ml.yml", project.root / "recipes" / "ml.yml")
    proc = project.doit("docker", "env=ml")
    assert Project.executed(proc) == ["lock:ml", "build:ml", "smoke:ml", "pack:ml", "docker:ml"]
    assert "sklearn fit ok" in proc.stdout + proc.stderr
    tarball = project.root / "dist" / f"ml-{current_subdir()}.tar.zst"
    assert tarball.stat().st_size > 20_000_000
    # the tarball, unpacked somewhere else, imports all three and fits a model
    dest = tmp_path / "unpacked"
    pack.extract(tarball, dest)
    subprocess.run([dest / "bin" / "python", dest / "bin" / "conda-unpack"], check=True)
    code = (
        "import numpy, pandas, sklearn; from sklearn.linear_model import LinearRegression;"
        "print(LinearRegression().fit([[0], [1]], [0, 2]).coef_[0])"
    )
    out = subprocess.run(
        [dest / "bin" / "python", "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert abs(float(out) - 2.0) < 1e-9
    with tarfile.open(project.root / "docker" / "ml" / "env.tar") as tf:
        assert "bin/python" in tf.getnames()
    assert Project.executed(project.doit("docker", "env=ml")) == []
