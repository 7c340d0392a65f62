"""The smoke stage: run a recipe's smoke imports and commands in its environment.

Inputs (its fingerprint): ``smoke.imports``, ``smoke.commands``, ``variables`` and the
Jupyter kernel options (the stage registers the kernel), from the recipe's whole ``extends``
chain. Its record ``build/state/<name>.smoke.json`` names the build (``build_id``), the
outcome, the inputs and the kernelspec written; a copy is kept with the build
(``envs/.builds/<name>/<build id>.smoke.json``), so a rollback makes it current again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from envbuild.layout import build_record, current_build_id, project_at, smoke_state
from envbuild.project import Project
from envbuild.records import SmokeRecord
from envbuild.stages import inputs
from envbuild.stages.registry import Stage, register

if TYPE_CHECKING:
    from envbuild.recipe.model import Recipe

log = logging.getLogger("envbuild")


def smoke_digest(recipe: Recipe) -> str:
    """Fingerprint of the smoke stage's inputs (see the module docstring)."""
    return inputs.digest(
        "smoke",
        {
            "imports": list(recipe.smoke.imports),
            "commands": list(recipe.smoke.commands),
            "variables": [list(v) for v in recipe.variables],
            # the display name matters only when a kernel is registered
            "kernel": recipe.jupyter.kernel and [recipe.jupyter.display_name],
        },
    )


def smoke_is_current(root: Path, name: str) -> bool:
    """True if the current build passed its smoke checks as the recipe states them now
    (imports, commands, variables, kernel options) and its kernelspec is still there."""
    project = project_at(root)
    report = SmokeRecord.peek(smoke_state(project, name))
    current = current_build_id(project, name)
    if current is None or report is None or not report.passed_for(current):
        return False
    kernel = report.kernel_spec
    if kernel and not Path(kernel).is_file():
        return False
    return inputs.unchanged(project, name, "smoke", report, smoke_state(project, name))


def smoke(project: Project, recipe: Recipe, name: str) -> None:
    """Run the smoke checks of the current build; write its record (removed first, so a
    failed run leaves no older pass behind); register its Jupyter kernel if asked.
    Raises SmokeError, BuildError if it is not built."""
    from envbuild.errors import SmokeError
    from envbuild.ship import kernels
    from envbuild.ship.smoke import smoke_env
    from envbuild.stages.build import current_build
    from envbuild.util.fs import atomic_link, remove_tree

    info = current_build(project, name)
    report = smoke_state(project, name)
    remove_tree(report)  # a failed run must not leave an older pass behind
    spec = kernels.kernel_dir(name) / "kernel.json" if recipe.jupyter.kernel else ""
    stamp = inputs.stamp(project, recipe, "smoke")
    try:
        smoke_env(
            name,
            recipe.smoke,
            project.env_prefix(name),
            report,
            info.build_id,
            recipe.variables,
            stamp,
            str(spec),
        )
    except SmokeError:
        remove_tree(report)
        raise
    # kept with the build: a rollback to it makes this record current again
    atomic_link(report, build_record(project, name, info.build_id, "smoke"))
    kernel = kernels.register(project, recipe)
    if kernel is not None:
        log.info("Jupyter kernel %s%s: %s", kernels.PREFIX, name, kernel)


STAGE = register(
    Stage(
        name="smoke",
        doc="run each recipe's smoke imports and commands in its environment",
        run=smoke,
        after=("build:{name}",),
        target=smoke_state,
        record=smoke_state,
        record_type=SmokeRecord,
        inputs=smoke_digest,
        is_current=smoke_is_current,
        hold=("five",),
        clean=True,
        column=False,
    )
)
