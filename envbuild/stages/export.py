"""The export stage, for people using conda: ``dist/<name>.environment.yml`` (the recipe's
top-level specs, for ``conda env create -f``) and ``dist/<name>-<platform>.explicit.txt`` (the
lock's explicit files, for ``conda create --file``); runs whenever asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envbuild.project import Project
from envbuild.stages.registry import Stage, register

if TYPE_CHECKING:
    from envbuild.recipe.model import Recipe


def export(project: Project, recipe: Recipe, name: str) -> None:
    """Write both; LockError if it is not locked."""
    from envbuild.errors import LockError
    from envbuild.lock.lockfile import explicit_path, read_packages
    from envbuild.recipe import environment_yml
    from envbuild.recipe.validate import display
    from envbuild.util.fs import atomic_write

    locked = read_packages(project.lockfile(name))
    out = project.path("dist") / f"{name}.environment.yml"
    text = environment_yml.render(
        name,
        recipe.channels,
        recipe.dependencies,
        recipe.pypi_dependencies,
        recipe.variables,
    )
    atomic_write(out, text)
    print(f"wrote {display(out)}")
    for platform in locked.platforms:
        src = explicit_path(project, name, platform)
        if not src.exists():
            msg = f"{display(src)} is missing; run `doit lock env={name}` to write it"
            raise LockError(msg)
        dest = project.path("dist") / src.name
        atomic_write(dest, src.read_bytes())
        print(f"wrote {display(dest)}")


STAGE = register(
    Stage(
        name="export",
        doc="write dist/<name>.environment.yml and the explicit files, for people using conda",
        run=export,
        after=("lock:{name}",),
        column=False,
    )
)
