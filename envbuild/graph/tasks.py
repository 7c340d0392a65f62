"""Recipes -> doit task dicts (https://pydoit.org/tasks.html). No I/O beyond listing recipes.

One subtask per environment and stage (``lock:ml``, ``build:ml``, ...), because doit keys its
state by task name. Stages are chained through files, so doit runs a stage only when its inputs
changed and skips the later stages of an environment whose earlier stage failed::

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
from envbuild.channels import transport_url
from envbuild.errors import EnvBuildError
from envbuild.graph import actions, uptodate
from envbuild.project import Project
from envbuild.util import progress
from envbuild.util.redact import scrub

TaskDict = dict[str, Any]


# per-environment steps shown with their duration (see :mod:`envbuild.util.progress`)
_SHOWN = frozenset(
    {"lock", "relock", "build", "smoke", "pack", "docker", "export", "nightly_env", "publish"}
)


# stages whose py-rattler worker (solve, install) is started ahead, while the stage modules
# import, and whether that call draws progress bars
_WORKER_FIRST: dict[str, Callable[[], bool]] = {
    "lock": lambda: False,
    "build": progress.interactive,
}


def guard(stage: str, *args: str) -> TaskFailed | None:
    from envbuild.rattler import client as rattler_client

    first = _WORKER_FIRST.get(stage)
    what = f"{stage.removesuffix('_env')} {args[1]}" if stage in _SHOWN else ""
    try:
        with rattler_client.warm(first()) if first else contextlib.nullcontext():
            run = actions.executor(stage)  # imported now, not when doit loads the graph
            with progress.step(what) if what else contextlib.nullcontext():
                run(*args)
    except EnvBuildError as e:
        return TaskFailed(scrub(str(e)), report=True)
    return None


def action(stage: str, *args: str) -> tuple[Callable[..., object], list[str]]:
    """A doit python-action running action ``stage`` of :data:`actions.EXECUTORS` with
    ``args``, the error boundary applied (module-level and picklable, for ``doit -n``).
    Raises KeyError for a name not in the table, as the graph loads."""
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
        return f"envbuild.graph.uptodate.{self.check.__name__}({self.name!r}) -- {what}"


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


def _uses_offline_channel(project: Project) -> bool:
    offline = project.path("offline_channel").as_uri()
    return any(transport_url(t, project.root) == offline for t in project.mirrors.values())


def _stage(
    project: Project,
    names: list[str],
    basename: str,
    doc: str,
    make: Callable[[Project, str], TaskDict],
) -> Iterator[TaskDict]:
    yield {"basename": basename, "name": None, "doc": doc}
    for name in names:
        task = make(project, name)
        task.setdefault("verbosity", 2)
        task.setdefault("doc", f"{basename} of environment '{name}'")
        yield {"basename": basename, "name": name, **task}


def _lock(project: Project, name: str, update: str = "") -> TaskDict:
    root = str(project.root)
    fresh = _UpToDate(uptodate.lock_is_fresh, root, name)
    return {
        "actions": [action("lock", root, name, update)],
        "targets": [project.lockfile(name)],
        "uptodate": [False] if update else [fresh],
        "task_dep": ["offline_channel"] if _uses_offline_channel(project) else [],
    }


# Each stage is keyed on the identity of the current build (its build id), not on file
# hashes: a build promoted by `doit nightly` or `doit rollback` is recognised as current, and
# the stages after it run only if they have not yet run for that build.


def _after(
    previous: str,
    run: str,
    is_current: Callable[[Path, str], bool],
    target: Callable[[Project, str], Path] | None,
) -> Callable[[Project, str], TaskDict]:
    """A link of the chain: stage ``run`` after stage ``previous`` of the same environment,
    making ``target`` (if any), up to date while ``is_current`` says so."""

    def make(project: Project, name: str) -> TaskDict:
        root = str(project.root)
        return {
            "actions": [action(run, root, name)],
            "task_dep": [f"{previous}:{name}"],
            "targets": [target(project, name)] if target else [],
            "uptodate": [_UpToDate(is_current, root, name)],
            "clean": [action("clean", root, run, name)],  # `doit clean <stage>:<name>`
        }

    return make


def _dockerfile(project: Project, name: str) -> Path:
    return project.path("docker") / name / "Dockerfile"


def _verify(project: Project, name: str) -> TaskDict:
    return {"actions": [action("verify", str(project.root), name)], "uptodate": [False]}


STAGES: dict[str, tuple[str, Callable[[Project, str], TaskDict]]] = {
    "lock": (
        "solve each recipe and write locks/<name>.conda-lock.yml; update=PKG[,PKG] updates "
        "only those packages, every other one stays pinned",
        _lock,
    ),
    "build": (
        "install the locked packages into envs/<name> (staged, then switched)",
        _after("lock", "build", uptodate.build_is_current, layout.build_state),
    ),
    "smoke": (
        "run each recipe's smoke imports and commands in its environment",
        _after("build", "smoke", uptodate.smoke_is_current, layout.smoke_state),
    ),
    "pack": (
        "conda-pack each environment into dist/ and prove the tarball",
        # the tarball's name depends on the recipe's pack format: no target, so that loading
        # the graph never parses recipes (pack_is_current checks the tarball itself)
        _after("smoke", "pack", uptodate.pack_is_current, None),
    ),
    "docker": (
        "render docker/<name>/Dockerfile and its build context (and image, with an engine)",
        _after("pack", "docker", uptodate.docker_is_current, _dockerfile),
    ),
    "verify": ("compare each environment with its lockfile; fails on any drift", _verify),
    "publish": (
        "push image, tarball and SBOM to the [publish] registry; tags :current, :<lock>, :<date>",
        lambda project, name: {
            "actions": [action("publish", str(project.root), name)],
            # without [publish] the action says so at once, before building anything
            "task_dep": [f"docker:{name}"] if project.publish_registry else [],
            "uptodate": [False],  # asks the registry (HEAD requests only when all is there)
        },
    ),
    "export": (
        "write dist/<name>.environment.yml and the explicit files, for people using conda",
        lambda project, name: {
            "actions": [action("export", str(project.root), name)],
            "task_dep": [f"lock:{name}"],
            "uptodate": [False],
        },
    ),
}


def stage_tasks(
    root: Path, stage: str, env: str | None, update: str | None = None
) -> Iterator[TaskDict]:
    """The doit subtasks of ``stage`` for the selected environments of the project at
    ``root``; ``update`` (lock only) names packages to update with the rest pinned."""
    project = layout.project_at(root)
    doc, make = STAGES[stage]
    if stage == "lock" and update:
        yield from _stage(
            project, project.selected(env), stage, doc, lambda p, n: _lock(p, n, update)
        )
        return
    yield from _stage(project, project.selected(env), stage, doc, make)
