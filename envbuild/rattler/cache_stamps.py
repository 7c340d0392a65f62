"""Stamps of package cache entries: what lets a warm build skip re-hashing the cache.

py-rattler's full cache validation re-hashes every file of every entry against its
``info/paths.json`` before linking it (~0.2 s for a 320 MB environment), because an entry is
shared through hard links: a file edited in place in any environment edits the cache too.
Its fast validation only checks that the files exist.

A stamp is the sha256 of every listed file's (path, size, mtime in ns), taken right after an
entry was validated in full or freshly extracted, and kept in the entry as
``info/envbuild-stamp.json`` (py-rattler reads only the files paths.json lists; a
re-extracted entry loses its stamp with the old directory). Any write to a file, through any
hard link, moves its mtime, so an entry whose stamp still matches holds what was validated;
only then does the installer use fast validation (see ``_rattler_worker.install``). A
mismatch, a missing stamp or an unreadable entry means full validation, which re-extracts
the damaged entry. The same trust as the bytecode cache's manifest
(:mod:`envbuild.install.bytecode`): a deliberate ``touch -r`` after an edit is not detected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from envbuild.util.fs import atomic_write

STAMP = Path("info") / "envbuild-stamp.json"
_ARCHIVE_SUFFIXES = (".conda", ".tar.bz2")


def entry_name(filename: str) -> str:
    """The name of py-rattler's cache entry for archive ``filename``:
    ``<name>-<version>-<build>`` (the file name without ``.conda`` / ``.tar.bz2``)."""
    for suffix in _ARCHIVE_SUFFIXES:
        if filename.endswith(suffix):
            return filename.removesuffix(suffix)
    return filename


def entry_dir(cache_dir: Path, filename: str) -> Path:
    """py-rattler's cache entry for archive ``filename``: ``<cache>/<name>-<version>-<build>``."""
    return cache_dir / entry_name(filename)


def _digest(entry: Path) -> str | None:
    """sha256 of (path, size, mtime_ns) of every file ``info/paths.json`` lists, or None if
    paths.json or any listed file cannot be read."""
    try:
        paths = json.loads((entry / "info" / "paths.json").read_bytes())["paths"]
        sha = hashlib.sha256()
        base = f"{entry}/"
        for p in paths:
            st = os.lstat(base + p["_path"])
            sha.update(f"{p['_path']}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sha.hexdigest()


def intact(entry: Path) -> bool:
    """True if ``entry`` has a stamp and its files still have the sizes and mtimes stamped."""
    try:
        stamped = json.loads((entry / STAMP).read_bytes())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return stamped is not None and stamped == _digest(entry)


def stamp(entry: Path) -> None:
    """Stamp ``entry`` as it is now. Call only right after it was validated in full or
    extracted. An entry that cannot be read is left without a stamp (never raises)."""
    digest = _digest(entry)
    if digest is not None:
        with contextlib.suppress(OSError):
            atomic_write(entry / STAMP, json.dumps({"files": digest}))


def extracted_from(entry: Path) -> str:
    """The sha256 (hex) of the archive py-rattler extracted ``entry`` from, as its cache lock
    file ``<entry>.lock`` records it (rattler_cache: a big-endian u64 revision, then the 32-byte
    sha256), or "" when it records none or cannot be read: then the archive is hashed as usual.
    """
    try:
        with open(f"{entry}.lock", "rb") as f:
            data = f.read(41)
    except OSError:
        return ""
    return data[8:].hex() if len(data) == 40 else ""


def lock_state(entry: Path) -> tuple[int, int, int]:
    """(inode, size, mtime in ns) of ``<entry>.lock``, which py-rattler rewrites whenever it
    extracts the entry again; (0, 0, 0) if it cannot be read."""
    try:
        st = os.stat(f"{entry}.lock")
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


__all__ = ["STAMP", "entry_dir", "entry_name", "extracted_from", "intact", "lock_state", "stamp"]
