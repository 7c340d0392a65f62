"""Issue 10: a conda environment.yml is a recipe (conda's spec forms, `- pip:`, variables,
nodefaults, prefix), variables reach smoke checks, the tarball's activation and the image, and
`doit export` writes an environment.yml and the explicit files back."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from envbuild.recipe.load import load_recipe
from envbuild.ship import docker
from envbuild.ship.pack import open_tar_stream
from envbuild.util.templates import PACKAGE_TEMPLATES

from ..conftest import Project

TWIN = """\
dependencies:
  - python 3.11.*
  - python-dateutil >=2.8
  - threadpoolctl
  - pip
"""
TWIN_YML = """\
name: twin_yml
channels: [conda-forge, nodefaults]
dependencies: ['python=3.11', 'python-dateutil>=2.8', 'conda-forge::threadpoolctl', pip]
prefix: /somewhere/else
"""


def _packages(lockfile: Path) -> set[tuple[str, str, str]]:
    doc = yaml.safe_load(lockfile.read_text())
    return {(p["platform"], p["name"], p["url"]) for p in doc["package"]}


def test_a_recipe_and_its_environment_yml_twin_lock_the_same_packages(
    make_project,  # type: ignore[no-untyped-def]
) -> None:
    p = make_project(recipes={"twin": TWIN, "twin_yml": TWIN_YML})
    p.doit("lock")
    a, b = (_packages(p.root / "locks" / f"{n}.conda-lock.yml") for n in ("twin", "twin_yml"))
    assert a == b and any(name == "pip" for _, name, _ in a)


VARS = """\
name: vars
channels: [conda-forge, nodefaults]
dependencies: ['python=3.11', python-dateutil, pip]
variables:
  ENVBUILD_GREETING: "it's \\"quoted\\" $HOME"
smoke:
  imports: [dateutil]
  commands: ['test "$ENVBUILD_GREETING" = "it''s \\"quoted\\" \\$HOME"']
pack: {format: tar.gz}
"""


@pytest.mark.slow
def test_variables_reach_smoke_tarball_activation_and_image(
    make_project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    p = make_project(recipes={"vars": VARS})
    p.doit("pack", "env=vars")  # smoke (its command reads the variable) and the proof pass
    tarball = next((p.root / "dist").glob("vars-*.tar.gz"))
    dest = tmp_path / "unpacked"
    dest.mkdir()
    with open_tar_stream(tarball) as f, tarfile.open(fileobj=f, mode="r|*") as tf:
        tf.extractall(dest, filter="tar")
    shown = subprocess.run(
        ["bash", "-c", f". {dest}/bin/activate && printf %s \"$ENVBUILD_GREETING\""],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert shown == 'it\'s "quoted" $HOME'
    state = yaml.safe_load((dest / "conda-meta" / "state").read_text())
    assert state == {"env_vars": {"ENVBUILD_GREETING": 'it\'s "quoted" $HOME'}}
    recipe = load_recipe(p.root / "recipes" / "vars.yml")
    text = docker.render(PACKAGE_TEMPLATES, docker.context_for(recipe, "0" * 64, "B1"))
    assert 'ENV ENVBUILD_GREETING="it\'s \\"quoted\\" \\$HOME"' in text


def test_export_writes_an_environment_yml_and_the_explicit_files(
    make_project,  # type: ignore[no-untyped-def]
) -> None:
    p: Project = make_project(recipes={"vars": VARS})
    out = p.doit("export", "env=vars").stdout
    exported = p.root / "dist" / "vars.environment.yml"
    assert f"wrote {exported.relative_to(p.root)}" in out
    doc = yaml.safe_load(exported.read_text())
    assert doc["channels"] == ["conda-forge"]  # no nodefaults: conda 26 reads it as a channel
    assert doc["variables"] == {"ENVBUILD_GREETING": 'it\'s "quoted" $HOME'}
    # read back as a recipe, it locks to the same packages
    (p.root / "recipes" / "roundtrip.yml").write_text(
        exported.read_text().replace("name: vars", "name: roundtrip")
    )
    assert load_recipe(p.root / "recipes" / "roundtrip.yml").dependencies == (
        "python=3.11", "python-dateutil", "pip")  # fmt: skip
    p.doit("lock", "env=roundtrip")
    assert _packages(p.root / "locks" / "roundtrip.conda-lock.yml") == _packages(
        p.root / "locks" / "vars.conda-lock.yml"
    )
    explicit = next((p.root / "dist").glob("vars-*.explicit.txt")).read_text()
    assert "@EXPLICIT" in explicit and "/pip-" in explicit
