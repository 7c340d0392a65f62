"""Unpacking and relocating a pulled environment without trusting it.

Unpacking (:func:`unpack`): stdlib ``tarfile`` in stream mode with a filter built on its
``data`` filter (https://docs.python.org/3/library/tarfile.html#tarfile.data_filter). Only
regular files, directories, symlinks and hard links are written; a device, FIFO or any
other member type is refused. Names are normalised and must stay inside the tree; a symlink's
target may climb (``..``) only at its start and never above the tree (so a chain of links
cannot resolve outside it either, whatever ``realpath`` says); no member is written below
a symlink, over one, or twice; a hard link must name a regular file already unpacked (and is
made to that normalised name, never through a symlink); a path has at most 4000 bytes and
200 directories. Modes
lose setuid/setgid/sticky and group/other write, owners are not restored. The regular files
may hold at most the unpacked size the pinned manifest declares plus :func:`size_limit`'s
slack, and the tar stream itself at most that plus 4 KiB of headers per member and 4 MiB:
a decompression bomb stops there, before its bytes are written.

Relocation (:func:`relocate`): what conda-pack's generated ``bin/conda-unpack`` would do,
done by our code. Its records, ``_prefix_records = [(path, placeholder, mode), ...]`` (see
``conda_pack.core._conda_unpack_template``), are read from the script's syntax tree with
``ast.literal_eval`` (nothing in it runs), checked, and each file's placeholder replaced
with conda-pack's own ``conda_pack.prefixes.replace_prefix`` (text: replaced; binary:
replaced and NUL-padded to the same length).
"""

from __future__ import annotations

import ast
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from envbuild.errors import EnvBuildError
from envbuild.util.redact import printable

ALLOWED_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.DIRTYPE: "directory",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hard link",
}
_KINDS = {
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
    tarfile.CONTTYPE: "contiguous file",
    tarfile.GNUTYPE_SPARSE: "sparse file",
}
HEADER_ALLOWANCE = 4096  # tar stream bytes per member besides its data (header, pax, padding)
_READ = 1 << 20  # tarfile's read size: the stream is read up to this far ahead
_SLACK = 4 * _READ
MAX_SCRIPT = 64 << 20  # bin/conda-unpack: its records are ~100 bytes a file
MAX_NAME = 4000  # bytes of a member's path (Linux PATH_MAX is 4096, with the prefix in it)
MAX_DEPTH = 200  # directories deep (tarfile makes parents recursively: no RecursionError)
MAX_COMPONENT = 255  # bytes of one path component (NAME_MAX)


def size_limit(declared: int) -> int:
    """The most bytes of regular files an environment declared as ``declared`` bytes may
    unpack to: +1% and +1 MiB."""
    return declared + declared // 100 + (1 << 20)


def member_limit(declared: int) -> int:
    """The most members a tarball of ``declared`` unpacked bytes may hold (a conda
    environment averages tens of KB a file)."""
    return 10_000 + declared // 512


@dataclass
class _Seen:
    """What the filter has let through so far (one unpack)."""

    limit: int
    max_members: int
    data: int = 0
    members: int = 0
    files: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)


class _Bounded:
    """A read-only stream that refuses to give more than the data the filter approved plus
    :data:`HEADER_ALLOWANCE` per member and 4 MiB of read-ahead (pax headers are read whole
    into memory: this bounds them too)."""

    def __init__(self, raw: IO[bytes], seen: _Seen, what: str) -> None:
        self.raw, self.seen, self.what, self.count = raw, seen, what, 0

    def read(self, n: int = -1) -> bytes:
        budget = self.seen.data + HEADER_ALLOWANCE * (self.seen.members + 1) + _SLACK
        room = budget - self.count
        if room <= 0:
            msg = (
                f"{self.what}: the tarball's headers hold more than {budget} bytes beside "
                f"its {self.seen.members} members' data; refused as a decompression bomb"
            )
            raise EnvBuildError(msg)
        data = self.raw.read(room if n < 0 else min(n, room))
        self.count += len(data)
        return data


def _refuse(what: str, name: str, why: str) -> EnvBuildError:
    return EnvBuildError(f"{what}: tarball member {name!r}: {why}; refused, nothing installed")


def _climbs_inside(link: str, target: str) -> bool:
    """Whether symlink ``link`` (a normalised name) -> ``target`` stays in the tree: relative,
    ``..`` only at the start (after dropping ``.``), and not above the link's depth."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    parts = [p for p in target.split("/") if p not in ("", ".")]
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    if ".." in parts[ups:]:
        return False
    return ups <= link.count("/")


def _filter(seen: _Seen, what: str) -> Any:
    """The tarfile extraction filter of one unpack (see the module docstring)."""

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        seen.members += 1
        if seen.members > seen.max_members:
            msg = f"{what}: the tarball holds more than {seen.max_members} members; refused"
            raise EnvBuildError(msg)
        if member.type not in ALLOWED_TYPES:
            kind = _KINDS.get(member.type, f"member of type {member.type!r}")
            raise _refuse(what, member.name, f"a {kind}, not a file, directory or link")
        name = posixpath.normpath(member.name)
        if name.startswith("/") or name == ".." or name.startswith("../") or "\0" in name:
            raise _refuse(what, member.name, "its path leaves the environment")
        if name == ".":
            return None  # the root itself: already made by us
        if (
            len(name.encode("utf-8", "surrogateescape")) > MAX_NAME
            or name.count("/") >= MAX_DEPTH
            or any(
                len(p.encode("utf-8", "surrogateescape")) > MAX_COMPONENT for p in name.split("/")
            )
        ):
            why = f"its path is over {MAX_NAME} bytes, {MAX_DEPTH} directories deep or has a "
            raise _refuse(what, printable(name, 80), why + f"name over {MAX_COMPONENT} bytes")
        parents = name.split("/")
        for i in range(1, len(parents)):
            if "/".join(parents[:i]) in seen.links:
                raise _refuse(what, member.name, "it would be written through a symlink")
        if name in seen.links or name in seen.files or (name in seen.dirs and not member.isdir()):
            raise _refuse(what, member.name, "a second member at the same path")
        if member.issym() and not _climbs_inside(name, member.linkname):
            raise _refuse(what, member.name, f"a symlink to {member.linkname!r}, outside it")
        target = posixpath.normpath(member.linkname) if member.islnk() else ""
        if member.islnk() and target not in seen.files:
            raise _refuse(
                what, member.name, f"a hard link to {member.linkname!r}, not a file in it"
            )
        if member.isreg():
            seen.data += member.size
            if seen.data > seen.limit:
                msg = (
                    f"{what}: the tarball unpacks to more than {seen.limit} bytes, more than "
                    "the unpacked size its pinned manifest declares; refused (a decompression "
                    "bomb, or a tarball that is not the one published)"
                )
                raise EnvBuildError(msg)
        try:
            safe = tarfile.data_filter(member.replace(name=name, deep=False), dest)
        except tarfile.FilterError as e:
            raise _refuse(what, member.name, str(e)) from None
        if safe.mode is not None:
            safe = safe.replace(mode=safe.mode & 0o755, deep=False)
        if member.islnk():  # linked by the checked name: `s/../f` would resolve through `s`
            safe = safe.replace(linkname=target, deep=False)
        {"symlink": seen.links, "directory": seen.dirs}.get(
            ALLOWED_TYPES[member.type], seen.files
        ).add(name)
        return safe

    return check


def unpack(tarball: Path, dest: Path, declared: int, what: str) -> None:
    """Unpack ``tarball`` (``.tar.zst``, ``.tar.gz`` or ``.tar``) into the new directory
    ``dest``, as the module docstring says; ``declared``: the unpacked size in bytes the pinned
    manifest records. Raises EnvBuildError naming ``what`` and the member refused (``dest`` is
    then partial: the caller removes it), or tarfile/zstandard/OS errors for an unreadable
    tarball or a full disk."""
    from envbuild.ship.pack import open_tar_stream

    seen = _Seen(size_limit(declared), member_limit(declared))
    dest.mkdir(parents=True)
    with open_tar_stream(tarball) as stream:
        bounded = _Bounded(stream, seen, what)
        with tarfile.open(fileobj=bounded, mode="r|", bufsize=_READ) as tf:  # type: ignore[call-overload]
            tf.copybufsize = _READ
            tf.extractall(dest, filter=_filter(seen, what))


def prefix_records(script: Path, what: str) -> list[tuple[str, str, str]]:
    """The ``(path, placeholder, mode)`` records of conda-pack's ``bin/conda-unpack`` at
    ``script``, read as data (``ast``; nothing runs) and checked: relative paths inside the
    prefix, a non-empty placeholder, mode ``text`` or ``binary``. Raises EnvBuildError."""
    bad = f"{what}: {script.name} is not the conda-unpack conda-pack writes"
    try:
        with open(script, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as f:
            text = f.read(MAX_SCRIPT + 1)
    except OSError as e:
        msg = f"{what}: the tarball holds no readable bin/conda-unpack ({e.strerror}); "
        msg += "not a conda-pack environment"
        raise EnvBuildError(msg) from None
    if len(text) > MAX_SCRIPT:
        raise EnvBuildError(f"{bad} (over {MAX_SCRIPT} bytes)")
    try:
        tree = ast.parse(text)
        node = next(
            n.value
            for n in tree.body
            if isinstance(n, ast.Assign)
            and [getattr(t, "id", None) for t in n.targets] == ["_prefix_records"]
        )
        records = ast.literal_eval(node)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, StopIteration):
        raise EnvBuildError(f"{bad} (no literal _prefix_records)") from None
    if not isinstance(records, list):
        raise EnvBuildError(f"{bad} (_prefix_records is not a list)")
    out = []
    for r in records:
        ok = isinstance(r, tuple) and len(r) == 3 and all(isinstance(x, str) for x in r)
        path, placeholder, mode = r if ok else ("", "", "")
        norm = posixpath.normpath(path) if path else ""
        if (
            not ok
            or mode not in ("text", "binary")
            or not placeholder
            or "\0" in path + placeholder
        ):
            raise EnvBuildError(f"{bad} (record {r!r})")
        if norm.startswith(("/", "../")) or norm in (".", ".."):
            raise EnvBuildError(f"{bad} (record {path!r} leaves the prefix)")
        out.append((norm, placeholder, mode))
    return out


def relocate(dest: Path, what: str) -> int:
    """Replace conda-pack's placeholders in the unpacked environment ``dest`` with ``dest``
    (absolute), as its ``bin/conda-unpack`` would, without running it. Returns the files
    changed. Raises EnvBuildError for bad records, a record naming a symlink or a missing
    file, or a binary file whose placeholder is shorter than ``dest``."""
    from conda_pack.prefixes import replace_prefix

    new_prefix = os.path.abspath(dest)
    real = os.path.realpath(dest)
    changed = 0
    for rel, placeholder, mode in prefix_records(dest / "bin" / "conda-unpack", what):
        path = os.path.join(new_prefix, rel)
        if os.path.realpath(path) != os.path.join(real, rel):
            raise EnvBuildError(f"{what}: relocation record {rel!r} goes through a symlink")
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except OSError as e:
            msg = f"{what}: relocation record {rel!r}: {e.strerror}; refused"
            raise EnvBuildError(msg) from None
        with os.fdopen(fd, "rb+") as f:
            data = f.read()
            try:
                new = replace_prefix(data, mode, placeholder, new_prefix)
            except ValueError as e:
                msg = f"{what}: relocating {rel!r} to {new_prefix} failed ({e}); "
                msg += "choose a shorter --prefix"
                raise EnvBuildError(msg) from None
            if new != data:
                f.seek(0)
                f.write(new)
                f.truncate()
                changed += 1
    return changed
