"""The one way a record is read and written: a frozen dataclass, a version, ``load``/``save``.

Every JSON file envbuild writes to remember something (a build's marker, a stage's state
file, a promotion's journal, a nightly's result) is a subclass of :class:`Record`. Its
dataclass fields are the JSON object's keys, spelled once, in the class; ``save`` writes
atomically (:func:`envbuild.util.fs.atomic_write`), with ``"version": VERSION`` from version 2
on.

Versions and compatibility: a record without ``"version"`` is version 1, the shape envbuild
wrote before records had a version. Version 1 is still written without the key, so an
envbuild from before this change reads what this one writes (an older envbuild builds its
markers with ``BuildInfo(**data)``: an unknown key would make it see every build as incomplete
and its gc remove them); a class that changes its shape bumps ``VERSION`` and the key
appears. A record whose version is newer than the class's ``VERSION`` (a later envbuild
wrote it) or that is not what its class describes (not JSON, not an object, a field missing
or of the wrong type) is *damaged*:

* :meth:`Record.load` raises :class:`envbuild.errors.RecordError` naming the file, what is
  wrong, and the fix (remove it; the stage that writes it runs again): for commands that
  need the record's content;
* :meth:`Record.peek` returns None for it, as for an absent record: for the up-to-date
  checks and ``status``, which then see the stage as not current, so the stage runs again
  and its ``save`` overwrites the damaged file. Nothing else is lost.

Keys a record does not know are ignored (a field added by a later envbuild of the same
version). A record file is data like any other: it is read only if it is a regular file of at
most :data:`MAX_BYTES` (a FIFO, a device or ``/dev/zero`` behind a symlink is never read),
NaN, Infinity and nesting too deep for the parser are damage, and a field that becomes part
of a path (a build id, an environment name) is declared with a :class:`Shape`
(``Annotated[str, BUILD_ID]``) and checked like its type, so ``"../.."`` is a damaged record,
never a directory removed. Standard library only: deciding "nothing to do" stays light.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from envbuild.errors import RecordError
from envbuild.util.fs import atomic_write, read_bounded

log = logging.getLogger("envbuild")
VERSION_KEY = "version"
MAX_BYTES = 64 << 20  # a record is a few KiB; a nightly's or verify report's list, a few MiB
_HINTS: dict[type, dict[str, Any]] = {}


@dataclasses.dataclass(frozen=True)
class Shape:
    """What a string field must look like beyond being a string, as ``Annotated[str,
    Shape(...)]`` metadata: ``what`` (for messages) and ``pattern`` (matched whole)."""

    what: str
    pattern: re.Pattern[str]

    def fits(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None


# One path component: what a build id or an environment name becomes in envs/.builds/<name>/
# <id>, dist/history/<name>/<id>.*; never "", ".", "..", a "/" or a glob character.
_COMPONENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
BUILD_ID = Shape(
    "a build id (one file name: letters, digits, '.', '_', '-')", re.compile(_COMPONENT)
)
BUILD_ID_OR_EMPTY = Shape(
    "a build id (one file name: letters, digits, '.', '_', '-') or empty",
    re.compile(f"(?:{_COMPONENT})?"),
)
ENV_NAME = Shape("an environment name (letters, digits, '.', '_', '-')", re.compile(_COMPONENT))


BuildId = Annotated[str, BUILD_ID]
BuildIdOrEmpty = Annotated[str, BUILD_ID_OR_EMPTY]
EnvName = Annotated[str, ENV_NAME]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: json.dumps never writes them here


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"{text} is out of range")
    return value


class _Wrong(Exception):
    """A value is not of its field's type (internal; becomes a RecordError)."""


def _hints(cls: type) -> dict[str, Any]:
    found = _HINTS.get(cls)
    if found is None:
        found = _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return found


def _checked(value: Any, hint: Any) -> Any:
    """``value`` (decoded JSON) as a value of type ``hint``: lists become tuples for a
    ``tuple[X, ...]`` field, ints become floats for a ``float`` one. Raises _Wrong."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(hint)
        value = _checked(value, base)
        if any(isinstance(m, Shape) and not m.fits(value) for m in meta):
            raise _Wrong
        return value
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            try:
                return _checked(value, arm)
            except _Wrong:
                continue
        raise _Wrong
    if hint is type(None) or hint is None:
        if value is None:
            return None
        raise _Wrong
    if hint is bool or hint is str:
        if isinstance(value, hint):
            return value
        raise _Wrong
    if hint is int or hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Wrong
        if hint is int and not isinstance(value, int):
            raise _Wrong
        return hint(value)
    args = typing.get_args(hint)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _Wrong
        item = args[0] if args else Any
        items = [_checked(v, item) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _Wrong
        item = args[1] if len(args) == 2 else Any
        return {k: _checked(v, item) for k, v in value.items()}
    raise _Wrong  # a field type this module does not know: say so loudly in the tests


_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _type_name(hint: Any) -> str:
    """``tuple[str, ...]`` -> "array of string": a field's type in JSON's words."""
    if hint in _NAMES:
        return _NAMES[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        shapes = [f" ({m.what})" for m in args[1:] if isinstance(m, Shape)]
        return _type_name(args[0]) + "".join(shapes)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin in (tuple, list):
        return f"array of {_type_name(args[0])}" if args else "array"
    if origin is dict or hint is dict:
        return f"object of {_type_name(args[1])}" if len(args) == 2 else "object"
    return "anything" if hint is Any else str(hint)


def _shown(value: Any) -> str:
    """``value`` as JSON for a message: control characters escaped, at most 40 characters
    (a list of a million items is not encoded whole)."""
    if isinstance(value, list | dict) and len(value) > 8:
        return "[...]" if isinstance(value, list) else "{...}"
    try:
        got = json.dumps(value)
    except (ValueError, RecursionError):
        got = "..."
    return got if len(got) <= 40 else got[:37] + "..."


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """Base of every record: subclasses are frozen dataclasses whose fields are the keys.

    Class variables: ``VERSION`` (the newest version this class reads and the one ``save``
    writes), ``WHAT`` (what the file is, for messages), ``FIX`` (what to do about a damaged
    one)."""

    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "record"
    FIX: ClassVar[str] = "remove it; the stage that writes it runs again"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "") -> Self:
        """The record in ``data`` (a decoded JSON object; ``source``: its file, for
        messages). Raises RecordError for an unknown version or a missing or mistyped
        field."""
        where = f"{source}: " if source else ""
        version = data.get(VERSION_KEY, 1)
        if isinstance(version, bool) or not isinstance(version, int):
            shown = _shown(version)
            msg = f"{where}this {cls.WHAT} has no valid version ({shown}); {cls.FIX}"
            raise RecordError(msg)
        if not 1 <= version <= cls.VERSION:
            msg = (
                f"{where}this {cls.WHAT} is version {version}, this envbuild reads versions "
                f"1 to {cls.VERSION} (written by a newer envbuild?); {cls.FIX}"
            )
            raise RecordError(msg)
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    msg = f"{where}this {cls.WHAT} lacks {f.name!r} (damaged); {cls.FIX}"
                    raise RecordError(msg)
                continue
            try:
                values[f.name] = _checked(data[f.name], hints[f.name])
            except _Wrong:
                got = _shown(data[f.name])
                msg = (
                    f"{where}this {cls.WHAT}'s {f.name!r} should be "
                    f"{_type_name(hints[f.name])}, not {got} (damaged); {cls.FIX}"
                )
                raise RecordError(msg) from None
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``save`` writes: every field (tuples as lists), and ``"version"`` from
        version 2 on (version 1 is the unversioned shape; see the module docstring)."""
        out: dict[str, Any] = {VERSION_KEY: self.VERSION} if self.VERSION > 1 else {}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def load(cls, path: Path) -> Self | None:
        """The record in ``path``, None if there is none. Raises RecordError naming ``path``
        if it cannot be read (not a regular file, over :data:`MAX_BYTES`), is not a JSON
        object, or is damaged (see :meth:`from_dict`)."""
        try:
            text = read_bounded(path, MAX_BYTES)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            msg = f"{path}: this {cls.WHAT} cannot be read ({e.strerror}); {cls.FIX}"
            raise RecordError(msg) from None
        try:
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
        except (ValueError, RecursionError):  # UnicodeDecodeError included; nesting too deep
            msg = f"{path}: this {cls.WHAT} is not valid JSON (damaged); {cls.FIX}"
            raise RecordError(msg) from None
        if not isinstance(data, dict):
            msg = f"{path}: this {cls.WHAT} is not a JSON object (damaged); {cls.FIX}"
            raise RecordError(msg)
        return cls.from_dict(data, str(path))

    @classmethod
    def peek(cls, path: Path) -> Self | None:
        """:meth:`load`, with a damaged record counted as absent (logged at debug level):
        for the up-to-date checks and reports, which then run the stage that rewrites it."""
        try:
            return cls.load(path)
        except RecordError as e:
            log.debug("%s", e)
            return None

    def save(self, path: Path) -> None:
        """Write this record to ``path`` atomically (parents created)."""
        atomic_write(path, self.to_json())

    def replaced(self, **changes: Any) -> Self:
        """A copy with ``changes`` (field name -> value)."""
        return dataclasses.replace(self, **changes)
