"""The doit namespace of one project: :func:`tasks_for` (https://pydoit.org/task-creation.html).

doit loads a namespace, a dict of ``task_*`` generators plus ``DOIT_CONFIG``, from a module
(``doit`` in a project, through its two-line ``dodo.py``) or from a dict (``envbuild``, through
``ModuleTaskLoader``). Building it reads nothing: ``envbuild.toml`` is read, once, when doit calls
the first generator, and command-line variables (``env=ml``, ``update=numpy``, ``prefix=PATH``,
``name=NAME``, ``force=1``) when each is called.
"""

from __future__ import annotations

import atexit
import functools
import gc
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from doit import get_var

from envbuild import layout
from envbuild.errors import EnvBuildError
from envbuild.graph.command_tasks import (
    check_task,
    maintenance_tasks,
    offline_channel_task,
    prefix_tasks,
)
from envbuild.graph.reporter import Reporter
from envbuild.graph.tasks import TaskDict, stage_tasks
from envbuild.stages import registry
from envbuild.stages.registry import Stage
from envbuild.util.log import setup_logging

# the names doit finds in a namespace after the offline channel and the registered stages
COMMAND_TASKS = ("task_check", "task_maintenance", "task_prefix")


def task_names() -> tuple[str, ...]:
    """The ``task_*`` names of :func:`tasks_for`'s namespace, in doit's order: the offline
    channel, every registered stage (:func:`envbuild.stages.registry.stages`), check, the
    maintenance commands, the prefix commands."""
    return (
        "task_offline_channel",
        *(f"task_{s.name}" for s in registry.stages()),
        *COMMAND_TASKS,
    )


def doit_config(root: Path) -> dict[str, Any]:
    """doit's settings for the project at ``root`` (https://pydoit.org/configuration.html):
    default task ``docker``, ``--continue``, the sqlite3 state file ``root/.doit.db``."""
    return {
        "default_tasks": ["docker"],
        "continue": True,  # a failing environment blocks only its own later stages
        "backend": "sqlite3",
        "dep_file": str(root / ".doit.db"),
        "verbosity": 2,
        "reporter": Reporter,  # doit's, without the title line before --json output
    }


def prepare(root: Path) -> None:
    """What the first generator does before any task exists: envbuild's logging on stderr, and
    ``envbuild.toml`` read (cached by :func:`envbuild.layout.project_at`). doit's loader has no
    error channel of its own, so a bad file is one line on stderr and ``SystemExit(1)``, which
    doit lets through (``envbuild`` checks the file itself first, and returns 1)."""
    _process_setup()
    try:
        layout.project_at(root)
    except EnvBuildError as e:
        print(f"envbuild: {e}", file=sys.stderr)
        raise SystemExit(1) from None


@functools.cache
def _process_setup() -> None:
    setup_logging()
    # At exit, before the interpreter's final garbage collections: they would traverse every
    # object conda-lock's pydantic models and py-rattler left (~60 ms after a lock; measured in
    # benchmarks/speed.py); frozen objects are skipped, and freed with their modules as usual.
    atexit.register(gc.freeze)


def _creator(make: Callable[[], Any], doc: str | None = None) -> Callable[[], Any]:
    """A doit task creator calling ``make``. doit orders creators by the line they are
    defined on: every creator is defined here, so the namespace's order is doit's."""

    def creator() -> Any:
        return make()

    creator.__doc__ = doc
    return creator


def tasks_for(root: Path) -> dict[str, Any]:
    """The doit namespace of the project at ``root`` (a directory holding ``envbuild.toml``):
    ``{"DOIT_CONFIG": dict, "task_<name>": generator, ...}`` with :func:`task_names`, for
    ``doit.cmd_base.ModuleTaskLoader``: one generator per registered stage, then the
    commands. Reads nothing and raises nothing; the generators raise ``SystemExit(1)`` for a
    bad ``envbuild.toml`` (see :func:`prepare`)."""
    root = root.resolve()

    def env() -> Any:
        prepare(root)
        return get_var("env", None)

    def stage(spec: Stage) -> Callable[[], Iterator[TaskDict]]:
        def make() -> Iterator[TaskDict]:
            values = (get_var(v, None) for v in spec.variables)
            yield from stage_tasks(root, spec.name, env(), *(v or "" for v in values))

        return make

    def offline_channel() -> TaskDict:
        prepare(root)
        return offline_channel_task(root)

    def prefix() -> Iterator[TaskDict]:
        prepare(root)
        yield from prefix_tasks(root, get_var("prefix", None), get_var("name", None),
                                get_var("force", None))  # fmt: skip

    namespace: dict[str, Any] = {
        "DOIT_CONFIG": doit_config(root),
        "task_offline_channel": _creator(offline_channel),
    }
    for spec in registry.stages():
        namespace[f"task_{spec.name}"] = _creator(stage(spec), spec.doc)
    namespace["task_check"] = _creator(lambda: check_task(root, env()))
    namespace["task_maintenance"] = _creator(
        lambda: maintenance_tasks(root, env()),
        "nightly, _nightly_env:<name>, relock, ci_merge, rollback:<name>, gc, status, schedule.",
    )
    namespace["task_prefix"] = _creator(
        prefix, "doctor prefix=PATH, adopt prefix=PATH name=NAME [force=1]."
    )
    return namespace
