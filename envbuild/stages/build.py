"""The build stage: install the locked packages into ``envs/<name>`` (staged, then switched).

Current when ``envs/<name>`` is a complete build of the current lockfile, installed for the
path it is at, its record ``build/state/<name>.build.json`` names that build, and no
verification found it drifted. Keyed on the identity of the current build (its build id), not
on file hashes: a build promoted by ``doit nightly`` or ``doit rollback`` is recognised as
current, and the stages after it run only if they have not yet run for that build.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from envbuild.errors import BuildError
from envbuild.layout import (
    build_state,
    candidate_dir,
    project_at,
    promotion_journal,
    read_marker,
    verify_report,
)
from envbuild.project import Project
from envbuild.records import BuildInfo, VerifyReport
from envbuild.stages.registry import Stage, register
from envbuild.util.fs import file_sha256
from envbuild.util.progress import interactive

if TYPE_CHECKING:
    from envbuild.recipe.model import Recipe


def build_is_current(root: Path, name: str) -> bool:
    """True if envs/<name> is a complete build of the current lockfile, installed for the
    path it is at (not a copy of the project: its files would name the original), its state
    file names that build, and no verification found it drifted (a drifted environment is
    recreated)."""
    project = project_at(root)
    if promotion_journal(project, name).exists() or candidate_dir(project, name).exists():
        return False  # an interrupted switch or candidate: the build task settles it first
    prefix = project.env_prefix(name)
    info = read_marker(prefix)
    lock_path = project.lockfile(name)
    if info is None or not lock_path.exists() or info.lock_sha256 != file_sha256(lock_path):
        return False
    if info.prefix and os.path.realpath(info.prefix) != os.path.realpath(prefix):
        return False  # the project was copied or moved (cp -a): rebuild where it is now
    state = BuildInfo.peek(build_state(project, name))
    if state is None or state.build_id != info.build_id:
        return False
    report = VerifyReport.peek(verify_report(project, name))
    return not (report and report.drifted_for(info.build_id))


def current_build(project: Project, name: str) -> BuildInfo:
    """The completion marker of environment ``name``'s current build; BuildError if it is
    not built."""
    info = read_marker(project.env_prefix(name))
    if info is None:
        from envbuild.recipe.validate import display

        msg = (
            f"environment '{name}' is not built ({display(project.env_prefix(name))}); "
            f"run `doit build env={name}`"
        )
        raise BuildError(msg)
    return info


def record_build_state(project: Project, name: str) -> None:
    """Write build/state/<name>.build.json for the current build (the smoke task's input)."""
    current_build(project, name).save(build_state(project, name))


def build(project: Project, recipe: Recipe, name: str) -> None:
    """Build envs/<name> from its lock (doit decided it must, ``--always-execute``
    included), record it and list it in conda's environments.txt."""
    from envbuild.install import build as build_mod
    from envbuild.install import conda_envs

    build_mod.build_locked(recipe, project)
    record_build_state(project, name)
    conda_envs.register(project, name)  # the stable path: a no-op once it is listed


STAGE = register(
    Stage(
        name="build",
        doc="install the locked packages into envs/<name> (staged, then switched)",
        run=build,
        after=("lock:{name}",),
        target=build_state,
        record=build_state,
        record_type=BuildInfo,
        is_current=build_is_current,
        hold=("five",),
        clean=True,
        warm=interactive,
        column=False,
    )
)
