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
from collections.abc import Iterator
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
from envbuild.util.log import setup_logging

# the names doit finds in a namespace, in their order of definition (doit sorts by line)
TASK_NAMES = (
    "task_offline_channel",
    "task_lock",
    "task_verify",
    "task_check",
    "task_build",
    "task_smoke",
    "task_pack",
    "task_docker",
    "task_publish",
    "task_export",
    "task_maintenance",
    "task_prefix",
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


def tasks_for(root: Path) -> dict[str, Any]:
    """The doit namespace of the project at ``root`` (a directory holding ``envbuild.toml``):
    ``{"DOIT_CONFIG": dict, "task_<name>": generator, ...}`` with :data:`TASK_NAMES`, for
    ``doit.cmd_base.ModuleTaskLoader``. Reads nothing and raises nothing; the generators raise
    ``SystemExit(1)`` for a bad ``envbuild.toml`` (see :func:`prepare`)."""
    root = root.resolve()

    def env() -> Any:
        prepare(root)
        return get_var("env", None)

    def task_offline_channel() -> TaskDict:
        prepare(root)
        return offline_channel_task(root)

    def task_lock() -> Iterator[TaskDict]:
        """solve each recipe (env=NAME[,NAME]; update=PKG[,PKG] updates only those packages)"""
        yield from stage_tasks(root, "lock", env(), get_var("update", None))

    def task_verify() -> Iterator[TaskDict]:
        yield from stage_tasks(root, "verify", env())

    def task_check() -> TaskDict:
        return check_task(root, env())

    def task_build() -> Iterator[TaskDict]:
        yield from stage_tasks(root, "build", env())

    def task_smoke() -> Iterator[TaskDict]:
        yield from stage_tasks(root, "smoke", env())

    def task_pack() -> Iterator[TaskDict]:
        yield from stage_tasks(root, "pack", env())

    def task_docker() -> Iterator[TaskDict]:
        yield from stage_tasks(root, "docker", env())

    def task_publish() -> Iterator[TaskDict]:
        yield from stage_tasks(root, "publish", env())

    def task_export() -> Iterator[TaskDict]:
        yield from stage_tasks(root, "export", env())

    def task_maintenance() -> Iterator[TaskDict]:
        """nightly, _nightly_env:<name>, relock, ci_merge, rollback:<name>, gc, status, schedule."""
        yield from maintenance_tasks(root, env())

    def task_prefix() -> Iterator[TaskDict]:
        """doctor prefix=PATH, adopt prefix=PATH name=NAME [force=1]."""
        prepare(root)
        yield from prefix_tasks(root, get_var("prefix", None), get_var("name", None),
                                get_var("force", None))  # fmt: skip

    found = locals()  # the generators above, by name
    return {"DOIT_CONFIG": doit_config(root), **{name: found[name] for name in TASK_NAMES}}
