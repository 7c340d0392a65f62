"""What goes to the py-rattler worker and what comes back, as typed data.

:class:`InstallRequest` is the ``install`` operation's request, serialised to JSON only here
(:meth:`InstallRequest.to_json`, :meth:`InstallRequest.from_json`). :class:`WorkerFailure` is
the worker's report of an exception, with its :class:`FailureKind` decided where the exception
is caught (:func:`classify`, in the worker): by its type where there is one to go by, else by
py-rattler's message, read in this one place. The parent decides on the kind (retry a network
failure, refuse a checksum mismatch), never on the text. Imports no py-rattler.
"""

from __future__ import annotations

import enum
import errno
import re
from dataclasses import dataclass, fields
from typing import Any


class FailureKind(enum.StrEnum):
    """Why a worker operation failed, for the caller's decision."""

    NETWORK = "network"  # the connection broke, the server was busy: another attempt may work
    CHECKSUM = "checksum"  # an archive is not the one the lock names: retrying cannot fix it
    DISK = "disk"  # no space, over quota, read-only file system
    OTHER = "other"


@dataclass(frozen=True)
class WorkerFailure:
    """The worker's report of an exception: its class name ``type``, ``message``, for solves
    the channel's package ``names`` (did-you-mean hints), for checksum failures one
    ``details`` dict per archive (``transport``, ``expected``, ``actual`` sha256 hex; ``name``
    and ``url`` where the worker knows them), its ``kind``, and ``unreachable``: the channel or
    mirror did not serve a file (not found, refused), so its mirror setting is worth a hint."""

    type: str
    message: str
    names: tuple[str, ...] = ()
    details: tuple[dict[str, str], ...] = ()
    kind: FailureKind = FailureKind.OTHER
    unreachable: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this failure (:meth:`from_json` reads it back)."""
        return {
            "type": self.type,
            "message": self.message,
            "names": list(self.names),
            "details": list(self.details),
            "kind": str(self.kind),
            "unreachable": self.unreachable,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerFailure:
        """A failure from the worker's JSON; a kind this version does not know is OTHER."""
        try:
            kind = FailureKind(data.get("kind", "other"))
        except ValueError:
            kind = FailureKind.OTHER
        return cls(
            str(data["type"]),
            str(data["message"]),
            tuple(data.get("names", ())),
            tuple(data.get("details", ())),
            kind,
            bool(data.get("unreachable", False)),
        )


# py-rattler reports an install's failures as InstallerError (or IoError), whatever the cause:
# the cause is in its message. A broken connection or a busy server is worth another attempt;
# a checksum mismatch is not (the channel serves other bytes: retrying cannot fix it).
_TRANSIENT = re.compile(
    r"error decoding response body|error sending request|connection|timed out"
    r"|end of file before message length|status code: 5|\b(?:429|502|503|504)\b"
)
_UNREACHABLE = re.compile(r"No such file|not found|404|connection|error sending")
# py-rattler's own check of an http(s) download against the locked sha256
_HASH_MISMATCH = re.compile(
    r"hash mismatch when extracting (?P<url>\S+) to \S+: "
    r"expected (?P<expected>[0-9a-f]{64}), got (?P<actual>[0-9a-f]{64})"
)
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_DISK = re.compile(
    r"No space left on device|Disk quota exceeded|Read-only file system"
    r"|os error (?:28|122|30)\b"
)


def classify(exc: BaseException) -> WorkerFailure:
    """The report of ``exc``, caught in the worker. By type: an exception carrying checksum
    ``details`` (:class:`envbuild.rattler.records.ArchiveMismatch`) is CHECKSUM, an OSError
    for a full, over-quota or read-only disk is DISK; else by py-rattler's message
    (:func:`kind_of_message`)."""
    names = tuple(getattr(exc, "names", ()))
    details = tuple(getattr(exc, "details", ()))
    failure = kind_of_message(type(exc).__name__, str(exc), names)
    if details:
        return WorkerFailure(failure.type, failure.message, names, details, FailureKind.CHECKSUM)
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return WorkerFailure(failure.type, failure.message, names, (), FailureKind.DISK)
    return failure


def kind_of_message(type_: str, message: str, names: tuple[str, ...] = ()) -> WorkerFailure:
    """A failure of class ``type_`` judged by its ``message``, the one place that reads
    py-rattler's text: a hash mismatch on download is CHECKSUM (its ``details`` parsed), a
    broken connection, timeout or 5xx/429 status NETWORK, a full disk DISK, else OTHER."""
    unreachable = _UNREACHABLE.search(message) is not None
    if m := _HASH_MISMATCH.search(message):
        detail = {"transport": m["url"], "expected": m["expected"], "actual": m["actual"]}
        return WorkerFailure(type_, message, names, (detail,), FailureKind.CHECKSUM, unreachable)
    if _TRANSIENT.search(message):
        kind = FailureKind.NETWORK
    elif _DISK.search(message):
        kind = FailureKind.DISK
    else:
        kind = FailureKind.OTHER
    return WorkerFailure(type_, message, names, (), kind, unreachable)


@dataclass(frozen=True)
class InstallRequest:
    """The ``install`` operation's input: lock ``records`` (conda-lock package dicts with
    ``url`` where to fetch each, ``canonical_url``/``canonical_channel`` to record), the
    ``prefix`` to install into, its ``platform`` subdir, the package ``cache_dir``, ``auth``
    (host -> {"kind", "vars": names of environment variables}), the recipe's ``specs`` for
    ``conda-meta/history``, ``link_mode`` ("auto" or "copy"), ``reflink`` (the filesystem
    supports reflinks), ``show_progress`` (py-rattler draws bars on a terminal)."""

    records: tuple[dict[str, Any], ...]
    prefix: str
    platform: str
    cache_dir: str
    auth: dict[str, dict[str, str]]
    specs: tuple[str, ...]
    link_mode: str = "auto"
    reflink: bool = False
    show_progress: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON object the worker reads (:meth:`from_json`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, "records": list(self.records), "specs": list(self.specs)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstallRequest:
        """The request from its JSON object. Raises ValueError for a missing or unknown key."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"install request: unknown keys {unknown}")
        try:
            return cls(**{**data, "records": tuple(data["records"]), "specs": tuple(data["specs"])})
        except (KeyError, TypeError) as e:
            raise ValueError(f"install request: {e}") from None
