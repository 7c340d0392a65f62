"""Checking a document against one of the JSON Schemas shipped in ``envbuild/schemas/``
(``recipe.json``: ``recipes/<name>.yml``; ``envbuild-toml.json``: ``envbuild.toml``), and
saying what is wrong in envbuild's words.

The schemas are JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12) using only
keywords whose meaning draft 2019-09 shares, so fastjsonschema
(https://horejsek.github.io/python-fastjsonschema/), which compiles a schema to Python once
per process (a few milliseconds; jsonschema's import alone takes seconds here), checks them.
Two annotation keywords of our own, ignored by editors and validators, shape the messages:
``x-expected`` (a noun phrase: "expected <it>, got ..." / "<value> is not <it>") and
``x-name`` (for an enum: "unknown <it> 'x' (did you mean 'y'?)").

A :class:`Problem` has the key path and the problem; the caller adds the file (and the line
where it can find one). Semantic checks no schema expresses (credentials in URLs, match specs,
dates, key files) stay with the caller and run after this one.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
NAMES = {"recipe": "recipe.json", "config": "envbuild-toml.json"}


def did_you_mean(word: str, choices: object) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)  # type: ignore[attr-defined]
    return f" (did you mean '{close[0]}'?)" if close else ""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 60, 60
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = _REPR.maxset = 4


def show(value: Any) -> str:
    """A bounded repr (hostile input may be huge or deeply nested)."""
    return _REPR.repr(value)


def got(value: Any) -> str:
    """What a value is, for "expected X, got <this>": a scalar's repr, a container's type too."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, str | int | float | bool):
        return show(value)
    return f"{type(value).__name__} {show(value)}"


def escaped(text: str) -> str:
    """``text`` with each non-printable character (ESC, newline, bidi override...) shown as its
    Python escape, so that a key path from a file cannot drive the terminal it is printed on."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def key_text(key: str) -> str:
    """A key as shown in a key path: non-printable ones escaped, long ones cut."""
    key = key if key.isprintable() else show(key)
    return key if len(key) <= 40 else key[:37] + "..."


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a document does not match its schema: ``path`` is the key path of the value at
    fault (``smoke.imports[0]``; ``""`` for the document), ``message`` what is wrong and the
    fix, without the file."""

    path: str
    message: str

    def at(self, where: str) -> str:
        """``<where>: <path>: <message>``, the path left out when empty."""
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def schema_file(name: str) -> Path:
    """The packaged schema ``name`` (``recipe`` or ``config``). KeyError for another name."""
    return SCHEMAS / NAMES[name]


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """The parsed schema ``name`` (``recipe`` or ``config``)."""
    loaded: dict[str, Any] = json.loads(schema_file(name).read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator(name: str) -> Any:
    import fastjsonschema  # compiled once per process, on first use

    return fastjsonschema.compile(schema(name))


def check(name: str, data: Any, table: str = "a mapping") -> Problem | None:
    """The first way ``data`` breaks schema ``name``, or None if it matches. ``table`` is
    what a JSON object is called in the messages ("a mapping" in YAML, "a table" in TOML)."""
    from fastjsonschema import JsonSchemaValueException

    try:
        _validator(name)(data)
    except JsonSchemaValueException as e:
        path = escaped((e.name or "data").removeprefix("data").removeprefix("."))
        return _problem(path, e.rule or "", e.value, e.definition or {}, table)
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key_text(key)}" if path else key_text(key)


def _problem(path: str, rule: str, value: Any, defn: dict[str, Any], table: str) -> Problem:
    if rule == "additionalProperties":
        known = list(defn.get("properties", {}))
        extra = next(k for k in value if k not in known)
        if not isinstance(extra, str):
            return Problem(path, f"keys must be strings, got {show(extra)}")
        hint = did_you_mean(extra, known)
        return Problem(_join(path, extra), f"unknown key{hint}; known keys: {', '.join(known)}")
    if rule == "propertyNames":
        names = defn["propertyNames"]
        pattern = re.compile(_python_pattern(names.get("pattern", "")))
        bad = next(k for k in value if not isinstance(k, str) or not pattern.search(k))
        return Problem(_join(path, str(bad)), f"not {names.get('x-expected', 'a valid name')}")
    if rule == "enum":
        choices = [str(c) for c in defn["enum"]]
        hint = did_you_mean(str(value), choices)
        if "x-name" in defn:
            return Problem(path, f"unknown {defn['x-name']} {show(value)}{hint}")
        return Problem(
            path, f"{show(value)} is not supported{hint}; use one of {', '.join(choices)}"
        )
    if rule in ("pattern", "not") and "x-expected" in defn:
        return Problem(path, f"{show(value)} is not {expected(defn, table)}")
    if rule == "type" and isinstance(value, str) and "array" in _types(defn):
        fix = f" (write it as a list: [{show(value)[1:-1]}])"
        return Problem(path, f"expected {expected(defn, table)}, got the string {show(value)}{fix}")
    return Problem(path, f"expected {expected(defn, table)}, got {got(value)}")


def _types(defn: dict[str, Any]) -> list[str]:
    kind = defn.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def expected(defn: dict[str, Any], table: str = "a mapping") -> str:
    """A noun phrase for what ``defn`` (a schema) accepts: its ``x-expected``, else one made
    from its type and bounds ("an integer from 1 to 9", "a list of strings")."""
    if "x-expected" in defn:
        return str(defn["x-expected"])
    nouns = []
    for kind in _types(defn):
        if kind == "integer" and "minimum" in defn and "maximum" in defn:
            nouns.append(f"an integer from {defn['minimum']} to {defn['maximum']}")
        elif kind == "array":
            items = defn.get("items", {})
            nouns.append("a list of strings" if _types(items) == ["string"] else "a list")
        elif kind == "string":
            nouns.append("a non-empty string" if defn.get("pattern") == "\\S" else "a string")
        else:
            nouns.append(
                {"boolean": "true or false", "object": table, "number": "a number"}.get(
                    kind, f"a value of type {kind}"
                )
            )
    return " or ".join(nouns) or "a valid value"


def _python_pattern(pattern: str) -> str:
    """A schema's (ECMA 262) ``pattern`` for ``re.search``: ``$`` is the end of the string,
    as fastjsonschema reads it too (Python's ``$`` also matches before a final newline)."""
    return re.sub(r"(?<!\\)\$", r"\\Z", pattern)
