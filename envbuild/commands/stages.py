"""The one executor of every stage (:mod:`envbuild.stages`), and of ``check`` and the offline
channel: ``(project root, environment name, variables)`` -> side effect.

:func:`execute` is the shape every stage shares, written once: load the project and recipe,
run the stage's precheck, hold its mutexes (the environment's build mutex, "the five",
recovering a switch that a killed process left), skip it if another process made it current
meanwhile, run it. It lives here, not in the stage modules, because the build mutex's
recovery is :mod:`envbuild.ops.promotion`, a floor above the stages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from envbuild.errors import EnvBuildError, LockError
from envbuild.install import build as build_mod
from envbuild.layout import current_build_id
from envbuild.lock.lockfile import read_packages
from envbuild.ops import promotion
from envbuild.project import Project, load_project
from envbuild.recipe.validate import display
from envbuild.stages import registry
from envbuild.stages.common import exclusive, load
from envbuild.stages.lock import lock_is_fresh

__all__ = ["check", "exclusive", "execute", "load", "offline_channel", "the_five"]


@contextlib.contextmanager
def the_five(project: Project, name: str) -> Iterator[bool]:
    """Hold environment ``name``'s build mutex, the one lock of its five published artifacts
    (environment, lockfile, explicit files, tarball, image tag), after finishing or
    discarding what a killed run left (:func:`promotion.recover`). Yields True if another
    process switched the environment while this one waited (a nightly, a rollback): the
    caller then redoes only what is not current for that build."""
    before = current_build_id(project, name)
    with build_mod.build_mutex(project, name):
        recovered = promotion.recover(project, name)
        yield recovered or current_build_id(project, name) != before


def execute(stage: str, root: str, name: str, *variables: str) -> None:
    """Run stage ``stage`` (a registered name) of environment ``name`` of the project at
    ``root``: load → precheck → hold → is it current now → run. doit decided it must run
    (``--always-execute`` included); a stage that holds the build mutex and became current
    while this process waited for it (another build, a nightly, a rollback) is skipped.
    Raises what the stage raises (EnvBuildError for anything the user must fix)."""
    spec = registry.get(stage)
    run = spec.runner()
    project, recipe = load(root, name)
    if spec.precheck is not None:
        spec.precheck(project, recipe, name)
    with contextlib.ExitStack() as held:
        moved = False
        for kind in spec.hold:
            if kind == "own":
                held.enter_context(exclusive(project, name, stage))
            else:
                moved = held.enter_context(the_five(project, name))
        current = spec.is_current
        if moved and current is not None and current(project.root, name):
            return
        run(project, recipe, name, *variables)


def offline_channel(root: str) -> None:
    from envbuild.offline.channel import build_offline_channel

    project = load_project(Path(root))
    build_offline_channel(
        project.path("offline_channel"),
        project.path("offline_cache"),
        project.offline_pins,
        project.offline_requirements,
    )


def stale_reasons(root: Path, names: list[str]) -> dict[str, str]:
    """name -> why its lock is stale, for each stale recipe among ``names``. No solve, no
    network, no conda-lock: the up-to-date check of the lock task, then the lockfile read
    plainly to say whether the platforms are what changed."""
    out = {}
    for name in names:
        try:
            project, recipe = load(root, name)
        except EnvBuildError as e:
            out[name] = f"recipe error: {e}"
            continue
        path = project.lockfile(name)
        if not path.exists():
            out[name] = "no lockfile"
            continue
        try:
            lockfile = read_packages(path)
        except EnvBuildError as e:
            out[name] = str(e)
            continue
        if lock_is_fresh(project.root, name):
            continue
        locked = sorted(lockfile.platforms)
        if locked != sorted(recipe.platforms):
            out[name] = (
                f"{display(path)} is locked for {', '.join(locked)} but the recipe now lists "
                f"{', '.join(sorted(recipe.platforms))}; run `doit lock env={name}`"
            )
        else:
            out[name] = "the recipe's solve inputs changed since it was locked"
    return out


def check(root: str, env: str = "") -> None:
    """Print each recipe's lock state; LockError (non-zero exit) if any is stale."""
    project = load_project(Path(root))
    names = project.selected(env)
    stale = stale_reasons(Path(root), names)
    for name in names:
        print(f"{name}: {'STALE: ' + stale[name] if name in stale else 'up to date'}")
    if stale:
        msg = f"{len(stale)} of {len(names)} lockfile(s) stale: {', '.join(stale)}; run `doit lock`"
        raise LockError(msg)
