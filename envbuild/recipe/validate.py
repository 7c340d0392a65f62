"""Messages about bad input: paths shown relative to the working directory, bounded reprs of
hostile values, and the ``Checker`` that prefixes every validation error with its file and
runs the recipe schema (``envbuild/schemas/recipe.json``) before any semantic check.

Pure: no I/O beyond ``os.path.relpath`` and reading the packaged schema once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from envbuild.errors import RecipeError
from envbuild.util import schema
from envbuild.util.schema import show

__all__ = ["Checker", "display", "show"]


def display(path: Path) -> str:
    """``path`` relative to the working directory when inside it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


class Checker:
    """Validation that knows the file, so every message starts with it."""

    def __init__(self, path: Path) -> None:
        self.where = display(path)

    def fail(self, key: str, problem: str) -> RecipeError:
        return RecipeError(schema.Problem(key, problem).at(self.where))

    def structure(self, data: Any) -> dict[str, Any]:
        """``data`` (one loaded YAML document) if it matches the recipe schema: every key
        known, every value of its type and form. Raises RecipeError naming the first key
        that does not, with a did-you-mean for an unknown key."""
        problem = schema.check("recipe", data)
        if problem is not None:
            raise RecipeError(problem.at(self.where))
        assert isinstance(data, dict)  # the schema's root is an object
        return data
