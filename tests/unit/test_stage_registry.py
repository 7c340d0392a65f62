"""Issue 29: a stage is one object, registered once. A toy stage defined here, and nowhere
else, runs through doit in-process, is a no-op when current, reruns when its input changes,
and shows in ``doit status``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain

from envbuild.graph.factory import tasks_for
from envbuild.project import Project
from envbuild.recipe.model import Recipe
from envbuild.records import Record
from envbuild.stages import registry
from envbuild.stages.registry import Stage


@dataclass(frozen=True, slots=True)
class ToyRecord(Record):
    """The toy stage's record: the sha256 of ``toy.txt`` it shouted."""

    input: str


def _record(project: Project, name: str) -> Path:
    return project.path("state") / f"{name}.toy.json"


def _shout(root: Path, name: str) -> Path:
    return root / "build" / "toy" / f"{name}.txt"


def _input_sha(root: Path) -> str:
    return hashlib.sha256((root / "toy.txt").read_bytes()).hexdigest()


def _toy_is_current(root: Path, name: str) -> bool:
    """The output exists and was made from toy.txt as it is now."""
    from envbuild.layout import project_at

    record = ToyRecord.peek(_record(project_at(root), name))
    return _shout(root, name).exists() and record is not None and record.input == _input_sha(root)


RUNS: list[str] = []  # the environments the toy stage ran for, in order


def _toy_run(project: Project, recipe: Recipe, name: str) -> None:
    RUNS.append(name)
    text = (project.root / "toy.txt").read_text()
    _shout(project.root, name).parent.mkdir(parents=True, exist_ok=True)
    _shout(project.root, name).write_text(f"{recipe.name}: {text.upper()}")
    ToyRecord(input=_input_sha(project.root)).save(_record(project, name))


TOY = Stage(
    name="toy",
    doc="shout toy.txt into build/toy/<name>.txt",
    run=_toy_run,
    target=lambda project, name: _shout(project.root, name),
    record=_record,
    record_type=ToyRecord,
    is_current=_toy_is_current,
)


def _doit(root: Path, *args: str) -> int:
    return DoitMain(ModuleTaskLoader(tasks_for(root)), config_filenames=()).run(list(args))


def test_a_toy_stage_runs_reruns_on_its_input_and_shows_in_status(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from envbuild.commands import maintenance

    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "tiny.yml").write_text("name: tiny\ndependencies: [python]\n")
    (tmp_path / "envbuild.toml").write_text("")
    (tmp_path / "toy.txt").write_text("hello")
    with registry.temporarily(TOY):
        RUNS.clear()
        assert _doit(tmp_path, "toy") == 0
        assert RUNS == ["tiny"] and _shout(tmp_path, "tiny").read_text() == "tiny: HELLO"
        assert _doit(tmp_path, "toy") == 0
        assert RUNS == ["tiny"]  # current: not run again
        (tmp_path / "toy.txt").write_text("again")
        assert _doit(tmp_path, "toy") == 0
        assert RUNS == ["tiny", "tiny"] and _shout(tmp_path, "tiny").read_text() == "tiny: AGAIN"
        capfd.readouterr()
        maintenance.status(str(tmp_path), "tiny", as_json=False)
        header, row = capfd.readouterr().out.splitlines()[:2]
        assert header.split()[-1] == "toy" and row.split()[-1] == "current"
        (tmp_path / "toy.txt").write_text("changed")
        maintenance.status(str(tmp_path), "tiny", as_json=True)
        assert json.loads(capfd.readouterr().out)[0]["stages"] == {"toy": "-"}
    assert not registry.is_stage("toy")
    assert _doit(tmp_path, "toy") != 0  # gone with the `with` block


def test_a_stage_is_registered_once() -> None:
    with registry.temporarily(TOY), pytest.raises(ValueError, match="'toy' is registered"):
        registry.register(TOY)
    with pytest.raises(ValueError, match="'lock' is registered already"):
        registry.register(Stage(name="lock", doc="a second lock", run=_toy_run))
    with pytest.raises(KeyError, match="no stage named 'buidl'"):
        registry.get("buidl")


def test_the_registry_lists_the_built_in_stages_in_order() -> None:
    assert [s.name for s in registry.stages()] == list(registry.BUILTIN)
    assert registry.get("build").after_for(None, "ml") == ["lock:ml"]  # type: ignore[arg-type]


def test_every_stage_with_a_record_names_its_record_class() -> None:
    """A stage's record file and its class are declared together: the class is a Record (its
    fields are the file's keys, spelled only there)."""
    for stage in registry.stages():
        assert (stage.record is None) == (stage.record_type is None), stage.name
        assert stage.record_type is None or issubclass(stage.record_type, Record), stage.name
