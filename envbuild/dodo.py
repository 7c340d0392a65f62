"""envbuild's doit tasks, for a project's two-line ``dodo.py``::

    # doit tasks of this envbuild project
    from envbuild.dodo import *  # noqa: F403

(and for the ``envbuild`` command, which loads this module directly). The project is the
directory doit runs in: doit changes into the ``dodo.py``'s directory before loading it, and
``envbuild`` into the nearest directory holding ``envbuild.toml``. Command-line variables
(``env=ml``, ``update=numpy``, ``prefix=PATH``, ``name=NAME``, ``force=1``) are read when the
tasks are generated. Everything is delegated to :mod:`envbuild.graph.tasks`.
"""

import atexit
import gc
import sys
from pathlib import Path
from typing import Any

from doit import get_var

from envbuild.errors import EnvBuildError
from envbuild.graph.command_tasks import (
    check_task,
    maintenance_tasks,
    offline_channel_task,
    prefix_tasks,
)
from envbuild.graph.reporter import Reporter
from envbuild.graph.tasks import stage_tasks
from envbuild.project import load_project
from envbuild.util.log import setup_logging

ROOT = Path.cwd().resolve()

DOIT_CONFIG = {
    "default_tasks": ["docker"],
    "continue": True,  # a failing environment blocks only its own later stages
    "backend": "sqlite3",
    "dep_file": str(ROOT / ".doit.db"),
    "verbosity": 2,
    "reporter": Reporter,  # doit's, without the title line before --json output
}
setup_logging()
try:  # envbuild.toml is read while doit loads the tasks: its errors are one line, exit 1
    load_project(ROOT)
except EnvBuildError as _e:
    print(f"envbuild: {_e}", file=sys.stderr)
    raise SystemExit(1) from None
# At exit, before the interpreter's final garbage collections: they would traverse every object
# conda-lock's pydantic models and py-rattler left (~60 ms after a lock; measured in
# benchmarks/speed.py); frozen objects are skipped, and freed with their modules as usual.
atexit.register(gc.freeze)


def _env() -> Any:
    return get_var("env", None)


def task_offline_channel() -> Any:
    return offline_channel_task(ROOT)


def task_lock() -> Any:
    """solve each recipe (env=NAME[,NAME]; update=PKG[,PKG] updates only those packages)"""
    yield from stage_tasks(ROOT, "lock", _env(), get_var("update", None))


def task_verify() -> Any:
    yield from stage_tasks(ROOT, "verify", _env())


def task_check() -> Any:
    return check_task(ROOT, _env())


def task_build() -> Any:
    yield from stage_tasks(ROOT, "build", _env())


def task_smoke() -> Any:
    yield from stage_tasks(ROOT, "smoke", _env())


def task_pack() -> Any:
    yield from stage_tasks(ROOT, "pack", _env())


def task_docker() -> Any:
    yield from stage_tasks(ROOT, "docker", _env())


def task_publish() -> Any:
    yield from stage_tasks(ROOT, "publish", _env())


def task_export() -> Any:
    yield from stage_tasks(ROOT, "export", _env())


def task_maintenance() -> Any:
    """nightly, _nightly_env:<name>, relock, ci_merge, rollback:<name>, gc, status, schedule."""
    yield from maintenance_tasks(ROOT, _env())


def task_prefix() -> Any:
    """doctor prefix=PATH, adopt prefix=PATH name=NAME [force=1]."""
    yield from prefix_tasks(ROOT, get_var("prefix", None), get_var("name", None),
                            get_var("force", None))  # fmt: skip


__all__ = [
    "DOIT_CONFIG",
    "task_build",
    "task_check",
    "task_docker",
    "task_export",
    "task_lock",
    "task_maintenance",
    "task_offline_channel",
    "task_pack",
    "task_prefix",
    "task_publish",
    "task_smoke",
    "task_verify",
]
