"""Issue 11: envbuild as a tool for any repository: a wheel with its templates, the `envbuild`
command (a front end over the same doit tasks), `envbuild init`, a two-line dodo.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from envbuild.cli import doit_arguments, init
from envbuild.errors import EnvBuildError


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["build", "ml"], ["build", "env=ml"]),
        (["build", "ml", "gpu"], ["build", "env=ml,gpu"]),
        (["status", "--json"], ["status", "--json"]),
        (["lock", "ml", "update=numpy"], ["lock", "update=numpy", "env=ml"]),
        (["doctor", "prefix=/x"], ["doctor", "prefix=/x"]),
        (["list", "--all"], ["list", "--all"]),
        (["info", "build:ml"], ["info", "build:ml"]),
    ],
)
def test_arguments_become_doit_arguments(args: list[str], expected: list[str]) -> None:
    assert doit_arguments(args) == expected


def test_init_writes_a_project_and_never_overwrites(tmp_path: Path) -> None:
    written = init(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        ".gitignore", "dodo.py", "envbuild.toml", "recipes/example.yml"]  # fmt: skip
    assert len((tmp_path / "dodo.py").read_text().strip().splitlines()) == 2
    assert "/envs/" in (tmp_path / ".gitignore").read_text()
    ignored = [ln for ln in (tmp_path / ".gitignore").read_text().splitlines() if ln[:1] != "#"]
    assert not any("locks" in ln for ln in ignored)  # lockfiles are committed
    (tmp_path / "recipes" / "example.yml").write_text("# mine\n")
    with pytest.raises(EnvBuildError, match="already exist"):
        init(tmp_path)
    assert (tmp_path / "recipes" / "example.yml").read_text() == "# mine\n"


def test_init_ci_adds_the_scheduled_workflow(tmp_path: Path) -> None:
    written = init(tmp_path, ci=True)
    workflow = tmp_path / ".github" / "workflows" / "envbuild-nightly.yml"
    assert workflow in written and "doit relock" in workflow.read_text()
    assert "run: python -m pip install envbuild" in workflow.read_text()  # not "install ."
    assert not (tmp_path / "deploy").exists()  # only what was asked for
