"""doit tasks for envbuild: `doit lock`, `doit build env=ml`, `doit smoke`, `doit pack`,
`doit docker`, `doit offline_channel`. Everything is delegated to envbuild.tasks."""

from pathlib import Path

from doit import get_var

from envbuild.log import setup_logging
from envbuild.tasks import (
    check_task,
    maintenance_tasks,
    offline_channel_task,
    prefix_tasks,
    stage_tasks,
)

ROOT = Path(__file__).resolve().parent
ENV = get_var("env", None)
UPDATE = get_var("update", None)
PREFIX = get_var("prefix", None)  # doctor / adopt: a conda environment anywhere

DOIT_CONFIG = {
    "default_tasks": ["docker"],
    "continue": True,  # a failing environment blocks only its own later stages
    "backend": "sqlite3",
    "dep_file": str(ROOT / ".doit.db"),
    "verbosity": 2,
}
setup_logging()


def task_offline_channel():
    return offline_channel_task(ROOT)


def task_lock():
    yield from stage_tasks(ROOT, "lock", ENV, UPDATE)


def task_verify():
    yield from stage_tasks(ROOT, "verify", ENV)


def task_export():
    yield from stage_tasks(ROOT, "export", ENV)


def task_check():
    return check_task(ROOT, ENV)


def task_build():
    yield from stage_tasks(ROOT, "build", ENV)


def task_smoke():
    yield from stage_tasks(ROOT, "smoke", ENV)


def task_pack():
    yield from stage_tasks(ROOT, "pack", ENV)


def task_docker():
    yield from stage_tasks(ROOT, "docker", ENV)


def task_maintenance():
    """nightly, nightly_env:<name>, rollback:<name>, gc, schedule."""
    yield from maintenance_tasks(ROOT, ENV)


def task_prefix():
    """doctor prefix=PATH, adopt prefix=PATH name=NAME [force=1]."""
    yield from prefix_tasks(ROOT, PREFIX, get_var("name", None), get_var("force", None))
