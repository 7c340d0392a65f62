"""Loading recipes: ``recipes/<name>.yml`` with its ``extends`` parents merged in
(:mod:`envbuild.recipe.layers`), each document validated by :mod:`envbuild.recipe.model` (the recipe
format is documented there), and finding a recipe file by environment name. The model's names
are re-exported here for callers that only load recipes.
"""

from __future__ import annotations

from pathlib import Path

from envbuild.errors import RecipeError
from envbuild.recipe.layers import load_layered
from envbuild.recipe.model import (
    DEFAULT_PLATFORMS,
    NAME_RE,
    NAME_RULE,
    DockerOptions,
    PackOptions,
    Recipe,
    Smoke,
    check_match_spec,
    current_subdir,
    pypi_name,
    spec_name,
)
from envbuild.recipe.validate import display, show
from envbuild.util.schema import did_you_mean


def load_recipe(path: Path, default_platforms: tuple[str, ...] = DEFAULT_PLATFORMS) -> Recipe:
    """Read and validate the recipe file at ``path``, with its ``extends`` parents (looked up
    beside it) merged in; ``default_platforms`` for a recipe that names none (the project's,
    never this machine's, so its lock does not depend on where it was made).

    Raises RecipeError if this file or a parent is missing, unreadable, not UTF-8, not valid
    YAML or invalid, and for a cycle of ``extends``.
    """
    return load_layered(path, default_platforms=default_platforms)


def find_recipe(recipes_dir: Path, name: str, known: list[str]) -> Path:
    """The recipe file for environment ``name``; RecipeError with a did-you-mean if absent."""
    if not NAME_RE.match(name):
        where = f"{display(recipes_dir / name)}.yml: " if NAME_RE.match(name.lower()) else ""
        msg = f"{where}{show(name)} is not a valid environment name ({NAME_RULE})"
        raise RecipeError(msg)
    path = recipes_dir / f"{name}.yml"
    if not path.exists():
        msg = (
            f"{display(path)}: no such recipe{did_you_mean(name, known)}; "
            f"known recipes: {', '.join(known) or '(none)'}"
        )
        raise RecipeError(msg)
    return path


__all__ = [
    "DEFAULT_PLATFORMS",
    "NAME_RE",
    "NAME_RULE",
    "DockerOptions",
    "PackOptions",
    "Recipe",
    "Smoke",
    "check_match_spec",
    "current_subdir",
    "find_recipe",
    "load_recipe",
    "pypi_name",
    "spec_name",
]
