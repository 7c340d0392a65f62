"""The bytecode cache: one directory per package and interpreter (``<cache>/<key>/``) holding
the ``.pyc`` files at their prefix-relative paths and a manifest of their sha256, size and
mtime; linked (or copied) into each build that needs them.

An entry is trusted only while each of its files still has the size and mtime it had when it
was hashed (a write through any hard link changes them; :mod:`envbuild.rattler.cache_stamps`
trusts the same for the package cache). Entries are written whole (a staged directory
renamed into place) under a per-key lock, and an intact entry is never replaced: another
build may be linking from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from envbuild.util.fs import atomic_write, remove_tree, staged_dir
from envbuild.util.mutex import hold

MANIFEST = "manifest.json"

Manifest = dict[str, tuple[str, int]]  # prefix-relative pyc path -> (sha256, size)


def link_or_copy(src: str | Path, dest: str | Path, link: bool) -> None:
    """Hard-link (``link``) or copy ``src`` to ``dest``. An existing ``dest`` is replaced,
    never written through: it may be a hard link into a cache."""
    if link:
        try:
            os.link(src, dest)
            return
        except FileExistsError:
            os.unlink(dest)
            return link_or_copy(src, dest, link)
        except OSError:
            pass  # another filesystem, or links not allowed: copy (a missing src raises)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest)
    shutil.copy2(src, dest)


def link_tree(src: Path, dest: Path, files: list[str], link: bool) -> None:
    """Link (or copy) ``files`` (relative paths) from ``src`` to ``dest``, making directories
    once each (thousands of files per package: plain strings, no pathlib, on purpose).
    Raises OSError if a file of ``src`` is gone."""
    made: set[str] = set()
    base_src, base_dest = str(src), str(dest)
    for rel in files:
        target = f"{base_dest}/{rel}"
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        link_or_copy(f"{base_src}/{rel}", target, link)


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _safe(rel: str) -> bool:
    """A relative path to a ``.pyc`` inside the directory it is joined to."""
    parts = rel.split("/")  # a leading "/" makes an empty first part
    return rel.endswith(".pyc") and ".." not in parts and "" not in parts


def cached(entry: Path) -> Manifest | None:
    """The manifest of a complete cache entry whose files are intact, or None (missing,
    incomplete, unreadable, or a file changed since it was hashed)."""
    try:
        manifest: dict[str, list[Any]] = json.loads((entry / MANIFEST).read_text())
        if not all(_safe(rel) for rel in manifest):
            return None  # written by hand: never links outside the prefix
        if all(_stamp(entry / rel) == stamp for rel, (_, *stamp) in manifest.items()):
            return {rel: (digest, size) for rel, (digest, size, _) in manifest.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return None


def link_entry(cache: Path, key: str, prefix: Path, link: bool) -> Manifest | None:
    """Link (or copy) the intact entry ``key`` into ``prefix``; its manifest, or None when
    there is no intact entry or it vanished while being linked (then compile instead)."""
    manifest = cached(cache / key)
    if manifest is None:
        return None
    try:
        link_tree(cache / key, prefix, list(manifest), link)
    except OSError:  # replaced or removed meanwhile (gc, a damaged entry made again)
        return None
    return manifest


def keep(cache: Path, key: str, prefix: Path, produced: dict[str, str], link: bool) -> Manifest:
    """Keep the bytecode just compiled in ``prefix`` (``produced``: prefix-relative path ->
    sha256) as entry ``key``, unless an intact entry is already there (another build kept
    the same bytes first; it may be linking from it). Output: the manifest of ``produced``
    (sha256 and size of the files in ``prefix``)."""
    entry = cache / key
    stamps = {rel: _stamp(prefix / rel) for rel in produced}
    with hold(cache / f".{key}.lock", "bytecode cache entry"):
        if cached(entry) is None:
            remove_tree(entry)  # a damaged entry, or one a killed run left
            with staged_dir(entry) as tmp:
                link_tree(prefix, tmp, list(produced), link)
                kept = {rel: [digest, *_stamp(tmp / rel)] for rel, digest in produced.items()}
                atomic_write(tmp / MANIFEST, json.dumps(kept, indent=1, sort_keys=True))
    return {rel: (digest, stamps[rel][0]) for rel, digest in produced.items()}


__all__ = ["MANIFEST", "Manifest", "cached", "keep", "link_entry", "link_or_copy", "link_tree"]
