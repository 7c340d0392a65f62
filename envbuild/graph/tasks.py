"""Registered stages -> doit task dicts (https://pydoit.org/tasks.html). No I/O beyond
listing recipes.

One subtask per environment and stage (``lock:ml``, ``build:ml``, ...), because doit keys its
state by task name; each is derived from the stage's definition
(:mod:`envbuild.stages.registry`): its ``after`` (``task_dep``), ``target``, ``is_current``
(``uptodate``; none: it runs whenever asked) and ``clean``. Stages are chained through files,
so doit runs a stage only when its inputs changed and skips the later stages of an environment
whose earlier stage failed::

    recipe --lock--> locks/ml.conda-lock.yml --build--> build/state/ml.build.json
      --smoke--> build/state/ml.smoke.json --pack--> dist/ml-<platform>.tar.zst
      --docker--> docker/ml/Dockerfile

Actions are module-level functions with string arguments (picklable for ``doit -n``); an
EnvBuildError becomes a failed task showing its message, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed

from envbuild import layout
from envbuild.errors import EnvBuildError, ReaderLeft
from envbuild.graph import actions
from envbuild.project import Project
from envbuild.stages import registry
from envbuild.stages.registry import Stage
from envbuild.util import progress
from envbuild.util.redact import scrub

TaskDict = dict[str, Any]


# the commands (not stages) shown as one line with their duration
_SHOWN = frozenset({"relock", "nightly_env"})


def guard(stage: str, *args: str) -> TaskFailed | None:
    """Run action ``stage`` with ``args``; an EnvBuildError is a failed task with its message.
    A stage's py-rattler worker (lock, build) is started ahead, while its modules import."""
    from envbuild.rattler import client as rattler_client

    spec = registry.get(stage) if registry.is_stage(stage) else None
    first = spec.warm if spec else None
    shown = spec.shown if spec else stage in _SHOWN
    what = f"{stage.removesuffix('_env')} {args[1]}" if shown else ""
    try:
        with rattler_client.warm(first()) if first else contextlib.nullcontext():
            run = actions.executor(stage)  # imported now, not when doit loads the graph
            with progress.step(what) if what else contextlib.nullcontext():
                run(*args)
    except EnvBuildError as e:
        return TaskFailed(scrub(str(e)), report=True)
    except BrokenPipeError:  # `envbuild status | head -1`: the reader left; not a failure
        progress.silence_stdout()  # doit's reporter writes on
        raise ReaderLeft from None
    return None


def action(stage: str, *args: str) -> tuple[Callable[..., object], list[str]]:
    """A doit python-action running action ``stage`` (a registered stage, or a name of
    :data:`actions.EXECUTORS`) with ``args``, the error boundary applied (module-level and
    picklable, for ``doit -n``). Raises KeyError for an unknown name, as the graph loads."""
    return (guard, [actions.check(stage), *args])


class _UpToDate:
    """doit's up-to-date callable for one stage of one environment; its repr is what
    ``doit info`` shows when it says the task must run."""

    def __init__(self, check: Callable[[Path, str], bool], root: str, name: str) -> None:
        self.check, self.root, self.name = check, root, name

    def __call__(self, task: object = None, values: object = None) -> bool:
        try:
            return self.check(Path(self.root), self.name)
        except EnvBuildError:
            return False  # let the action run and report the error

    def __repr__(self) -> str:
        what = " ".join((self.check.__doc__ or "").split("\n\n")[0].split())
        where = f"{self.check.__module__}.{self.check.__name__}"
        return f"{where}({self.name!r}) -- {what}"


class OfflineInputsUnchanged:
    """doit's up-to-date check of the offline channel: its inputs (python, pin file,
    whl2conda) are those of its last success. The protocol and saved value of
    ``doit.tools.config_changed``, but the inputs are computed only when doit checks this
    task: importing whl2conda for them cost ~13 ms of every other command."""

    def __init__(self, pins: Path, requirements: tuple[str, ...] = ()) -> None:
        self.pins = pins
        self.requirements = requirements
        self.digest: str | None = None

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(lambda: {"_config_changed": self.digest})

    def __call__(self, task: object = None, values: dict[str, Any] | None = None) -> bool:
        from envbuild.offline.channel import inputs

        self.digest = json.dumps(inputs(self.pins, self.requirements), sort_keys=True)
        return (values or {}).get("_config_changed") == self.digest

    def __repr__(self) -> str:
        return "envbuild offline channel inputs (python, pin file, whl2conda) unchanged"


def task_offline_channel(project: Project) -> TaskDict:
    """The offline channel, rebuilt when its inputs (python, pin file) change."""
    channel = project.path("offline_channel")
    return {
        "basename": "offline_channel",
        "doc": "build the local file:// channel (this interpreter + PyPI wheels) for offline use",
        "actions": [action("offline_channel", str(project.root))],
        "targets": [channel / "noarch" / "repodata.json"],
        "uptodate": [OfflineInputsUnchanged(project.offline_pins, project.offline_requirements)],
        "verbosity": 2,
    }


def stage_task(project: Project, stage: Stage, name: str, *variables: str) -> TaskDict:
    """The doit task dict of ``stage`` for environment ``name``: always run when it has no
    up-to-date check or a variable is given (``update=`` of lock)."""
    root = str(project.root)
    check = stage.is_current
    task: TaskDict = {
        "actions": [action(stage.name, root, name, *variables)],
        "task_dep": stage.after_for(project, name),
        "targets": [stage.target(project, name)] if stage.target else [],
        "uptodate": [False] if check is None or any(variables) else [_UpToDate(check, root, name)],
        "verbosity": 2,
        "doc": f"{stage.name} of environment '{name}'",
    }
    if stage.clean:
        task["clean"] = [action("clean", root, stage.name, name)]  # `doit clean <stage>:<name>`
    return task


def stage_tasks(root: Path, stage: str, env: str | None, *variables: str) -> Iterator[TaskDict]:
    """The doit subtasks of registered stage ``stage`` for the selected environments of the
    project at ``root``; ``variables``: the values of the stage's doit variables ("" unset)."""
    project = layout.project_at(root)
    spec = registry.get(stage)
    yield {"basename": stage, "name": None, "doc": spec.doc}
    for name in project.selected(env):
        yield {"basename": stage, "name": name, **stage_task(project, spec, name, *variables)}
