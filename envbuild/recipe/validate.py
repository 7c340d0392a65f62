"""Messages about bad input: paths shown relative to the working directory, bounded reprs of
hostile values, and the ``Checker`` that prefixes every validation error with its file.

Pure: no I/O beyond ``os.path.relpath``.
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any

from envbuild.errors import RecipeError
from envbuild.project import did_you_mean


def display(path: Path) -> str:
    """``path`` relative to the working directory when inside it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


class Checker:
    """Validation helpers that know the file, so every message starts with it."""

    def __init__(self, path: Path) -> None:
        self.where = display(path)

    def fail(self, key: str, problem: str) -> RecipeError:
        return RecipeError(f"{self.where}: {key}: {problem}" if key else f"{self.where}: {problem}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {kind(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(key, f"keys must be strings, got {show(k)}")
            if k not in allowed:
                k = k if len(k) <= 40 else k[:37] + "..."
                sub = f"{key}.{k}" if key else k
                raise self.fail(
                    sub, f"unknown key{did_you_mean(k, allowed)}; known keys: " + ", ".join(allowed)
                )
        return value

    def str_list(self, value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            raise self.fail(
                key,
                f"expected a list of strings, got the string {show(value)} "
                f"(write it as a list: [{show(value)[1:-1]}])",
            )
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of strings, got {kind(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(f"{key}[{i}]", f"expected a non-empty string, got {show(item)}")
        return tuple(v.strip() for v in value)

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, got {show(value)}")
        return value.strip()

    def integer(self, value: Any, key: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(key, f"expected an integer from {lo} to {hi}, got {show(value)}")
        return value


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 60, 60
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = _REPR.maxset = 4


def show(value: Any) -> str:
    """A bounded repr (hostile input may be huge or deeply nested)."""
    return _REPR.repr(value)


def kind(value: Any) -> str:
    return "nothing (null)" if value is None else f"{type(value).__name__} {show(value)}"
