"""What every stage's executor needs: the project and recipe of an environment, and the
per-stage mutex. Recipe parsing (py-rattler's spec parser) is imported when called."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from envbuild.project import Project, load_project
from envbuild.util.mutex import hold

if TYPE_CHECKING:
    from envbuild.recipe.model import Recipe


def exclusive(project: Project, name: str, stage: str) -> contextlib.AbstractContextManager[None]:
    """One ``stage`` of environment ``name`` at a time across processes."""
    return hold(project.path("state") / f".{name}.{stage}.lock", f"{stage} of '{name}'")


def load(root: str | Path, name: str) -> tuple[Project, Recipe]:
    """The project at ``root`` and its recipe ``name``; RecipeError/ConfigError if either is
    missing or invalid."""
    from envbuild.recipe.load import find_recipe, load_recipe

    project = load_project(Path(root))
    path = find_recipe(project.path("recipes"), name, project.recipe_names())
    return project, load_recipe(path, project.platforms)
