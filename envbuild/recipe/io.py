"""Reading recipe files defensively: size limit, UTF-8, safe YAML with unique keys, bounded
nesting. Every failure is a RecipeError naming the file (and the line where YAML knows it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from envbuild.recipe.validate import Checker, show
from envbuild.util.fs import read_bounded

MAX_RECIPE_BYTES = 1 << 20


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (YAML 1.2 says keys are unique; PyYAML
    silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {show(key)}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def read_document(path: Path) -> Any:
    """The YAML document in ``path`` (safe loading, unique keys). Raises RecipeError for a
    missing, unreadable, oversized (>1 MiB), non-UTF-8, invalid or too deeply nested file."""
    c = Checker(path)
    try:
        raw = read_bounded(path, MAX_RECIPE_BYTES)
    except FileNotFoundError:
        raise c.fail("", "no such recipe file") from None
    except OSError as e:
        problem = f"cannot read: {e.strerror}; a recipe must be a regular file of at most 1 MiB"
        raise c.fail("", problem) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise c.fail("", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise c.fail("", f"invalid YAML{at}: {show(problem)}") from None
    except RecursionError:
        raise c.fail("", "nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as e:  # e.g. a timestamp like 2024-13-45
        raise c.fail("", f"invalid YAML value: {show(str(e))}") from None
