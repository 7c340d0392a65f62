"""Issue 29: the doit namespace is built by ``tasks_for(root)`` without reading anything; the
project is ``root``, not the working directory, and ``envbuild.toml`` is read when doit asks
for the tasks (in-process: no doit subprocess)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain

from envbuild.graph.factory import task_names, tasks_for


def _project(root: Path, toml: str = "") -> Path:
    (root / "recipes").mkdir(parents=True)
    (root / "recipes" / "tiny.yml").write_text("name: tiny\ndependencies: [python]\n")
    (root / "envbuild.toml").write_text(toml)
    return root


def test_tasks_for_lists_the_project_at_root_from_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path / "proj")
    monkeypatch.chdir(tmp_path)
    namespace = tasks_for(root)
    assert set(namespace) == {"DOIT_CONFIG", *task_names()}
    assert namespace["DOIT_CONFIG"]["dep_file"] == str(root.resolve() / ".doit.db")
    assert DoitMain(ModuleTaskLoader(namespace), config_filenames=()).run(["list", "--all"]) == 0
    assert "lock:tiny" in capsys.readouterr().out
    assert (root / ".doit.db").exists() and not (tmp_path / ".doit.db").exists()


def test_a_bad_config_is_read_by_the_generators_not_by_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path / "proj", "[pubish]\nx = 1\n")
    monkeypatch.chdir(root)
    monkeypatch.delitem(sys.modules, "envbuild.dodo", raising=False)
    dodo = importlib.import_module("envbuild.dodo")
    namespace = {name: getattr(dodo, name) for name in dodo.__all__}  # as `import *` does
    with pytest.raises(SystemExit) as exit_:
        DoitMain(ModuleTaskLoader(namespace), config_filenames=()).run(["list"])
    assert exit_.value.code == 1
    assert "envbuild.toml: line 1: pubish: unknown key" in capsys.readouterr().err
