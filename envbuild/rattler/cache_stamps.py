"""Stamps of package cache entries: what lets a warm build skip re-hashing the cache.

py-rattler's full cache validation re-hashes every file of every entry against its
``info/paths.json`` before linking it (~0.2 s for a 320 MB environment), because an entry is
shared through hard links: a file edited in place in any environment edits the cache too.
Its fast validation only checks that the files exist.

A stamp is the sha256 of every listed file's (path, size, mtime in ns), taken right after an
entry was extracted from an archive whose sha256 envbuild checked against the lock, with that
sha256, and kept in the entry as ``info/envbuild-stamp.json`` (py-rattler reads only the files
paths.json lists; a re-extracted entry loses its stamp with the old directory). Any write to a
file, through any hard link, moves its mtime, so an entry whose stamp still matches holds what
was extracted from that archive. py-rattler's own record (``<entry>.lock``) cannot say so: it
keys entries by file name and writes the sha256 it was asked for before it fetches. The
installer (``envbuild.rattler.worker.install``) therefore discards every entry whose stamp
does not match the locked sha256 and its files, and links the rest with fast validation. The
same trust as the bytecode cache's manifest (:mod:`envbuild.install.bytecode`): a deliberate
``touch -r`` after an edit is not detected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

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


def intact(entry: Path, sha256: str = "") -> bool:
    """True if ``entry`` has a stamp, its files still have the sizes and mtimes stamped and,
    if ``sha256`` is given, the stamp says it was extracted from the archive with that
    sha256 (py-rattler keys its cache by file name, and records the sha256 it was asked for
    before it fetches, so its own record does not say what the entry holds)."""
    try:
        data = json.loads((entry / STAMP).read_bytes())
        stamped, origin = data["files"], data.get("sha256", "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    if sha256 and origin != sha256:
        return False
    return stamped is not None and stamped == _digest(entry)


def users(cache_dir: Path) -> Any:
    """The read-write lock of the installs using package cache ``cache_dir``
    (``<cache>/.envbuild-users.db``, filelock's SQLite-backed ``ReadWriteLock``: released by
    the operating system when its holder dies, kill -9 included). An install holds it for
    reading from before it links until it has stamped what it extracted; discarding an
    entry takes it for writing, so an entry another install has just extracted, and not yet
    stamped, is never discarded under it. Waits at most an hour."""
    import filelock

    cache_dir.mkdir(parents=True, exist_ok=True)
    return filelock.ReadWriteLock(
        cache_dir / ".envbuild-users.db", timeout=3600, is_singleton=False
    )


def stamp(entry: Path, sha256: str = "") -> None:
    """Stamp ``entry`` as it is now, extracted from the archive with ``sha256`` (hex). Call
    only right after it was extracted from that archive, checked against the lock, or
    validated in full. An entry that cannot be read is left without a stamp (never
    raises)."""
    digest = _digest(entry)
    if digest is not None:
        with contextlib.suppress(OSError):
            atomic_write(entry / STAMP, json.dumps({"files": digest, "sha256": sha256}))


__all__ = ["STAMP", "entry_dir", "entry_name", "intact", "stamp", "users"]
