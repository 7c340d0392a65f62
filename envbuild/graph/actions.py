"""What each doit action runs: a stage's name (:mod:`envbuild.stages.registry`) -> the one
stage executor, :func:`envbuild.commands.stages.execute`; any other action's name -> the
function in :data:`EXECUTORS`.

Task dicts (:mod:`envbuild.graph.tasks`, :mod:`envbuild.graph.command_tasks`) name an action
by its name; :func:`check` refuses a name that is neither a stage nor in the table when the
graph is built, so a typo fails as doit loads the tasks, not when the task runs. The executors
themselves are imported only when an action runs (:func:`executor`): they pull in conda-lock,
pydantic and the stage modules' work, which the no-op path must not pay for.
``tests/unit/test_architecture.py`` checks that every entry names a function that exists.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

from envbuild.stages import registry

STAGES = "envbuild.commands.stages"  # every stage, through its `execute`; check; offline channel
COMMANDS = "envbuild.commands.maintenance"  # everything else a task runs

EXECUTORS: dict[str, tuple[str, str]] = {
    "offline_channel": (STAGES, "offline_channel"),
    "check": (STAGES, "check"),
    "clean": ("envbuild.commands.clean", "clean"),
    "relock": (COMMANDS, "relock"),
    "ci_merge": (COMMANDS, "ci_merge"),
    "doctor": (COMMANDS, "doctor"),
    "nightly_env": (COMMANDS, "nightly_env"),
    "nightly_report": (COMMANDS, "nightly_report"),
    "rollback": (COMMANDS, "rollback"),
    "gc": (COMMANDS, "gc"),
    "status": (COMMANDS, "status"),
    "schedule": (COMMANDS, "schedule"),
    "adopt": (COMMANDS, "adopt"),
}


def check(name: str) -> str:
    """``name`` if it is a stage or an action of the table; raises KeyError naming the
    known ones."""
    if name not in EXECUTORS and not registry.is_stage(name):
        known = sorted([*EXECUTORS, *(s.name for s in registry.stages())])
        msg = f"no action named {name!r} (known: {', '.join(known)})"
        raise KeyError(msg)
    return name


def executor(name: str) -> Callable[..., None]:
    """The function that runs action ``name`` (its module imported now)."""
    if name not in EXECUTORS:
        execute = importlib.import_module(STAGES).execute
        return functools.partial(execute, registry.get(name).name)
    module, function = EXECUTORS[name]
    run: Callable[..., None] = getattr(importlib.import_module(module), function)
    return run
