"""The one table of what each doit action runs: an action's name -> the function executing it.

Task dicts (:mod:`envbuild.graph.tasks`) name an action by its key here; :func:`check` refuses
a name that is not in the table when the graph is built, so a typo fails as doit loads
``dodo.py``, not when the task runs. The executors themselves are imported only when an action
runs (:func:`executor`): they pull in conda-lock, pydantic and the stage modules, which the
no-op path must not pay for. ``tests/unit/test_architecture.py`` checks that every entry names a
function that exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

STAGES = "envbuild.commands.stages"  # per environment: lock -> build -> smoke -> pack -> docker
COMMANDS = "envbuild.commands.maintenance"  # everything else a task runs

EXECUTORS: dict[str, tuple[str, str]] = {
    "offline_channel": (STAGES, "offline_channel"),
    "lock": (STAGES, "lock"),
    "check": (STAGES, "check"),
    "build": (STAGES, "build"),
    "verify": (STAGES, "verify"),
    "smoke": (STAGES, "smoke"),
    "pack": (STAGES, "pack"),
    "docker": (STAGES, "docker"),
    "clean": ("envbuild.commands.clean", "clean"),
    "relock": (COMMANDS, "relock"),
    "ci_merge": (COMMANDS, "ci_merge"),
    "export": (COMMANDS, "export"),
    "doctor": (COMMANDS, "doctor"),
    "nightly_env": (COMMANDS, "nightly_env"),
    "nightly_report": (COMMANDS, "nightly_report"),
    "publish": (COMMANDS, "publish"),
    "rollback": (COMMANDS, "rollback"),
    "gc": (COMMANDS, "gc"),
    "status": (COMMANDS, "status"),
    "schedule": (COMMANDS, "schedule"),
    "adopt": (COMMANDS, "adopt"),
}


def check(name: str) -> str:
    """``name`` if it is an action of the table; raises KeyError naming the known ones."""
    if name not in EXECUTORS:
        msg = f"no action named {name!r} (known: {', '.join(sorted(EXECUTORS))})"
        raise KeyError(msg)
    return name


def executor(name: str) -> Callable[..., None]:
    """The function that runs action ``name`` (its module imported now)."""
    module, function = EXECUTORS[name]
    run: Callable[..., None] = getattr(importlib.import_module(module), function)
    return run
