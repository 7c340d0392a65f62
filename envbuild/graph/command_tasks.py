"""Task dicts of the commands that run when asked (https://pydoit.org/tasks.html): nightly,
relock, ci_merge, rollback, gc, status, schedule, doctor, adopt, check and the offline channel.
The per-environment stages are :mod:`envbuild.graph.tasks`, from the registry of
:mod:`envbuild.stages`; both name their executors through :mod:`envbuild.graph.actions` and
share its error boundary (:func:`tasks.guard`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from doit.exceptions import TaskFailed

from envbuild import layout
from envbuild.graph.tasks import TaskDict, action, guard, task_offline_channel


def gc_action(root: str, dry_run: bool) -> TaskFailed | None:
    """doit action for ``doit gc [--dry-run]`` (doit passes the task parameter by name)."""
    return guard("gc", root, dry_run)  # type: ignore[arg-type]


def ci_merge_action(root: str, env: str, dir: str) -> TaskFailed | None:
    """doit action for ``doit ci_merge --dir ARTIFACTS``."""
    return guard("ci_merge", root, dir, env)


def doctor_action(root: str, prefix: str, json: bool) -> TaskFailed | None:
    """doit action for ``doit doctor prefix=PATH [--json]``."""
    return guard("doctor", root, prefix, json)  # type: ignore[arg-type]


def status_action(root: str, env: str, json: bool) -> TaskFailed | None:
    """doit action for ``doit status [--json]``."""
    return guard("status", root, env, json)  # type: ignore[arg-type]


def _always(basename: str, doc: str, stage: str, root: str, names: list[str]) -> Iterator[TaskDict]:
    """A group ``basename`` of per-environment subtasks that run ``stage`` whenever asked."""
    yield {"basename": basename, "name": None, "doc": doc}
    for name in names:
        yield {
            "basename": basename,
            "name": name,
            "uptodate": [False],
            "verbosity": 2,
            "doc": f"{basename.lstrip('_')} of environment '{name}'",
            "actions": [action(stage, root, name)],
        }


def maintenance_tasks(root: Path, env: str | None) -> Iterator[TaskDict]:
    """``nightly`` (with per-recipe ``_nightly_env:<name>``, internal), ``relock``,
    ``ci_merge``, ``rollback:<name>``, ``gc``, ``status`` and ``schedule``: tasks that always
    run when asked for."""
    project = layout.project_at(root)
    names = project.selected(env)
    r = str(root)
    # internal: a leading "_" hides it from `doit list`
    yield from _always(
        "_nightly_env",
        "recreate one environment from a fresh solve (part of `doit nightly`)",
        "nightly_env",
        r,
        names,
    )
    yield {
        "basename": "nightly",
        "uptodate": [False],
        "verbosity": 2,
        "doc": "fresh solve, new build, smoke + verify, promote if all pass; report",
        "task_dep": [f"_nightly_env:{n}" for n in names],
        "actions": [action("nightly_report", r, env or "")],
    }
    yield from _always(
        "relock",
        "fresh solve of each recipe for all its platforms; write the lock if it changed",
        "relock",
        r,
        names,
    )
    yield {
        "basename": "ci_merge",
        "uptodate": [False],
        "verbosity": 2,
        "doc": "scheduled workflow: accept each new lock only if every platform built from it",
        "params": [
            {
                "name": "dir",
                "long": "dir",
                "type": str,
                "default": "artifacts",
                "help": "the directory the workflow downloaded its artifacts into",
            }
        ],
        "actions": [(ci_merge_action, [r, env or ""])],
    }
    yield from _always(
        "rollback",
        "switch each selected environment back to its previous build",
        "rollback",
        r,
        names if env else [],  # only ever for environments named explicitly
    )
    yield {
        "basename": "gc",
        "uptodate": [False],
        "verbosity": 2,
        "doc": "remove old builds, their tarballs and images, unreferenced cached packages",
        "params": [
            {
                "name": "dry_run",
                "long": "dry-run",
                "type": bool,
                "default": False,
                "help": "only list what would be removed, with sizes",
            }
        ],
        "actions": [(gc_action, [r])],
    }
    yield {
        "basename": "status",
        "uptodate": [False],
        "verbosity": 2,
        "doc": "one line per environment: lock, build, smoke, tarball, image, verify, nightly",
        "params": [
            {
                "name": "json",
                "long": "json",
                "type": bool,
                "default": False,
                "help": "print JSON instead of a table",
            }
        ],
        "actions": [(status_action, [r, env or ""])],
    }
    yield {
        "basename": "schedule",
        "uptodate": [False],
        "verbosity": 2,
        "doc": "write GitHub Actions, systemd and cron definitions for the nightly rebuild",
        "actions": [action("schedule", r, env or "")],
    }


def prefix_tasks(
    root: Path, prefix: str | None, name: str | None, force: str | None
) -> Iterator[TaskDict]:
    """``doctor`` (any conda prefix) and ``adopt`` (a prefix -> a recipe, rebuilt)."""
    r = str(root)
    yield {
        "basename": "doctor",
        "uptodate": [False],
        "verbosity": 2,
        "doc": "examine any conda environment: doit doctor prefix=PATH [--json]",
        "params": [
            {"name": "json", "long": "json", "type": bool, "default": False,
             "help": "print JSON instead of a table"},
        ],
        "actions": [(doctor_action, [r, prefix or ""])],
    }  # fmt: skip
    yield {
        "basename": "adopt",
        "uptodate": [False],
        "verbosity": 2,
        "doc": "turn a conda environment into recipes/NAME.yml, rebuild it, report: "
        "doit adopt prefix=PATH name=NAME [force=1]",
        "actions": [action("adopt", r, prefix or "", name or "", force or "")],
    }


def check_task(root: Path, env: str | None) -> TaskDict:
    """``doit check``: list recipes whose lock is stale; fail if any. Never solves."""
    return {
        "basename": "check",
        "doc": "list recipes whose lockfile is stale (no solve, no network); fails if any",
        "actions": [action("check", str(root), env or "")],
        "uptodate": [False],
        "verbosity": 2,
    }


def offline_channel_task(root: Path) -> TaskDict:
    """The doit task dict of the offline channel for the project at ``root``."""
    return task_offline_channel(layout.project_at(root))
