"""Bytecode at build time: every ``.py`` file of every conda package compiled once, kept in a
bytecode cache, and linked into each later build.

Conda compiles noarch: python packages at link time and conda-forge ships ``.pyc`` for the rest;
our offline packages (whl2conda, the repackaged interpreter) ship none, so without this every
import compiles from source, every time, as every user of a read-only prefix (the image).

* Compiled with the environment's own interpreter, ``compileall --invalidation-mode
  checked-hash`` (PEP 552): a ``.pyc`` is valid for its source's content, not its mtime, so a
  linked copy stays valid in any build and any relocated prefix. The source path it records
  (``co_filename``) is prefix-relative (``compileall -s <prefix>``), so the bytes are the same
  whatever the build directory (importlib sets the real path on load).
* Kept in the bytecode cache (default ``<package cache>-pyc/<key>/``), ``key`` being the
  sha256 of the package's archive sha256, the interpreter's record and the bytecode tag
  (``cpython-311``): a changed package or interpreter never reuses stale bytecode. Each kept
  file must still have the size and mtime it had when hashed before it is linked again (a file
  edited through a hard link is never reused).
* Recorded in each package's ``conda-meta`` record as ``pyc_file`` entries (conda's path type
  for bytecode it compiles itself), with sha256, so verify, pack, gc and the image treat them as
  part of the environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envbuild.util import proc
from envbuild.util.fs import atomic_write, file_sha256, remove_tree, staged_dir
from envbuild.util.mutex import hold

MANIFEST = "manifest.json"
_SKIP_TYPES = ("directory", "softlink", "pyc_file")


@dataclass(frozen=True, slots=True)
class PackageBytecode:
    """The ``.py`` files of one installed package and where their bytecode goes."""

    record: Path  # conda-meta/<name>-<version>-<build>.json
    key: str  # bytecode cache key (64 hex)
    sources: tuple[str, ...]  # prefix-relative .py paths
    pycs: tuple[str, ...]  # prefix-relative __pycache__/<stem>.<tag>.pyc paths, same order


def _pyc_path(source: str, tag: str) -> str:
    head, _, name = source.rpartition("/")
    stem = name[: -len(".py")]
    return f"{head}/__pycache__/{stem}.{tag}.pyc" if head else f"__pycache__/{stem}.{tag}.pyc"


def _interpreter(records: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(interpreter identity, bytecode tag) of the ``python`` among ``records`` (conda-meta
    records or lock install records: both carry name, version, build and sha256), or None."""
    python = next((r for r in records if r.get("name") == "python"), None)
    if python is None:
        return None
    major, minor = python["version"].split(".")[:2]
    interpreter = f"{python['name']}-{python['version']}-{python['build']}:{python.get('sha256')}"
    return interpreter, f"cpython-{major}{minor}"


def _records(prefix: Path) -> tuple[list[tuple[Path, dict[str, Any]]], str, str] | None:
    """(conda-meta records, interpreter identity, bytecode tag), or None without a python."""
    metas = sorted((prefix / "conda-meta").glob("*.json"))
    records = [(m, json.loads(m.read_text())) for m in metas]
    found = _interpreter([r for _, r in records])
    return None if found is None else (records, *found)


def _key(record: dict[str, Any], interpreter: str, tag: str) -> str:
    material = f"{record.get('sha256')}\n{interpreter}\n{tag}\nchecked-hash\nprefix-relative"
    return hashlib.sha256(material.encode()).hexdigest()


def plan(prefix: Path) -> list[PackageBytecode]:
    """What to compile in ``prefix`` (reads conda-meta only): for each package with ``.py``
    files, their bytecode paths and cache key. Empty without a CPython in the environment."""
    found = _records(prefix)
    if found is None:
        return []
    records, interpreter, tag = found
    out = []
    for meta, rec in records:
        entries = rec.get("paths_data", {}).get("paths", [])
        have = {e["_path"] for e in entries}
        sources = tuple(
            e["_path"]
            for e in entries
            if e["_path"].endswith(".py")
            and e.get("path_type") not in _SKIP_TYPES
            and _pyc_path(e["_path"], tag) not in have
        )
        if sources:
            pycs = tuple(_pyc_path(s, tag) for s in sources)
            out.append(PackageBytecode(meta, _key(rec, interpreter, tag), sources, pycs))
    return out


def keys_in_use(prefix: Path) -> set[str]:
    """The bytecode cache keys of the packages of a built ``prefix`` that have bytecode (for
    gc: entries no kept build uses can go)."""
    found = _records(prefix)
    if found is None:
        return set()
    records, interpreter, tag = found
    return {
        _key(rec, interpreter, tag)
        for _, rec in records
        if any(e.get("path_type") == "pyc_file" for e in rec.get("paths_data", {}).get("paths", []))
    }


def _link_or_copy(src: str | Path, dest: str | Path, link: bool) -> None:
    """Hard-link (``link``) or copy ``src`` to ``dest``. An existing ``dest`` is replaced,
    never written through: it may be a hard link into a cache."""
    if link:
        try:
            os.link(src, dest)
            return
        except FileExistsError:
            os.unlink(dest)
            return _link_or_copy(src, dest, link)
        except OSError:
            pass  # another filesystem, or links not allowed: copy
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest)
    shutil.copy2(src, dest)


def _link_tree(src: Path, dest: Path, files: list[str], link: bool) -> None:
    """Link (or copy) ``files`` (relative paths) from ``src`` to ``dest``, making directories
    once each (thousands of files per package: plain strings, no pathlib, on purpose)."""
    made: set[str] = set()
    base_src, base_dest = str(src), str(dest)
    for rel in files:
        target = f"{base_dest}/{rel}"
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        _link_or_copy(f"{base_src}/{rel}", target, link)


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _cached(entry: Path) -> dict[str, tuple[str, int]] | None:
    """The pyc path -> (sha256, size) map of a complete cache entry whose files are intact:
    each file still has the size and mtime it had when it was hashed (a write through any hard
    link changes them; :mod:`envbuild.rattler.cache_stamps` trusts the same for the package
    cache)."""
    try:
        manifest: dict[str, list[Any]] = json.loads((entry / MANIFEST).read_text())
        if all(_stamp(entry / rel) == stamp for rel, (_, *stamp) in manifest.items()):
            return {rel: (digest, size) for rel, (digest, size, _) in manifest.items()}
    except (OSError, ValueError, TypeError):
        pass
    return None


def _compile(prefix: Path, packages: list[PackageBytecode]) -> None:
    """Compile the sources of ``packages`` with the environment's interpreter (all cores).
    Files that do not compile (Python 2 test data, templates) are left without bytecode."""
    listing = "\n".join(str(prefix / s) for p in packages for s in p.sources) + "\n"
    # -s: the source path recorded in each .pyc (co_filename) is prefix-relative, so the
    # bytes do not depend on the build directory; importlib sets the real path on load.
    # -B -f: the modules compileall itself imports must not leave import-time (timestamp,
    # absolute path) .pyc files that it would then skip as up to date
    argv = [
        str(prefix / "bin" / "python"), "-I", "-B", "-m", "compileall", "-q", "-f", "-j", "0",
        "--invalidation-mode", "checked-hash", "-s", str(prefix), "-i", "-",
    ]  # fmt: skip
    proc.run(argv, check=False, input_text=listing, timeout=3600)


def _record(package: PackageBytecode, manifest: dict[str, tuple[str, int]]) -> None:
    """Add the package's bytecode (path -> (sha256, size)) to its conda-meta record as
    ``pyc_file`` entries."""
    data: dict[str, Any] = json.loads(package.record.read_text())
    paths = data.setdefault("paths_data", {"paths": [], "paths_version": 1})["paths"]
    files = data.setdefault("files", [])
    for rel in package.pycs:
        if rel not in manifest:
            continue
        digest, size = manifest[rel]
        entry = {"_path": rel, "path_type": "pyc_file", "sha256": digest}
        paths.append(entry | {"sha256_in_prefix": digest, "size_in_bytes": size})
        files.append(rel)
    # compact: json's C encoder only runs without indent, and records are read by programs
    atomic_write(package.record, json.dumps(data, sort_keys=True, separators=(",", ":")))


def link_kept(
    prefix: Path, cache: Path, records: list[dict[str, Any]], link: bool = True
) -> dict[str, dict[str, tuple[str, int]]]:
    """Link (``link``) or copy into ``prefix`` the kept bytecode of ``records`` (the lock's
    install records), before or while py-rattler installs the packages themselves: the
    cache key needs only each record's sha256 and the interpreter's. Touches no conda-meta.

    Output: cache key -> {pyc path: (sha256, size)} of what was linked, for
    :func:`compile_prefix`. Packages without kept bytecode are left to it. Never raises for a
    missing or damaged cache entry (it is compiled again later)."""
    found = _interpreter(records)
    if found is None:
        return {}
    interpreter, tag = found
    linked = {}
    for record in records:
        key = _key(record, interpreter, tag)
        manifest = _cached(cache / key)
        if manifest is not None:
            _link_tree(cache / key, prefix, list(manifest), link)
            linked[key] = manifest
    return linked


def compile_prefix(
    prefix: Path,
    cache: Path,
    link: bool = True,
    linked: dict[str, dict[str, tuple[str, int]]] | None = None,
) -> tuple[int, int]:
    """Give every package in ``prefix`` its bytecode: linked (``link``) or copied from
    ``cache`` when kept there (or already linked by :func:`link_kept`: ``linked``), else
    compiled and kept. Records the files in conda-meta.

    Output: (packages served from the cache, packages compiled). Raises ProcessError only if
    the interpreter cannot be started."""
    packages = plan(prefix)
    reused = 0
    todo = []
    for package in packages:
        manifest = (linked or {}).get(package.key)
        if manifest is None:
            manifest = _cached(cache / package.key)
            if manifest is None:
                todo.append(package)
                continue
            _link_tree(cache / package.key, prefix, list(manifest), link)
        _record(package, manifest)
        reused += 1
    if todo:
        _compile(prefix, todo)
    for package in todo:
        produced = {
            rel: file_sha256(prefix / rel) for rel in package.pycs if (prefix / rel).exists()
        }
        entry = cache / package.key
        with hold(cache / f".{package.key}.lock", "bytecode cache entry"):
            remove_tree(entry)  # a damaged entry, or one a killed run left
            with staged_dir(entry) as tmp:
                _link_tree(prefix, tmp, list(produced), link)
                stamps = {rel: _stamp(tmp / rel) for rel in produced}
                kept = {rel: [digest, *stamps[rel]] for rel, digest in produced.items()}
                atomic_write(tmp / MANIFEST, json.dumps(kept, indent=1, sort_keys=True))
        _record(package, {rel: (digest, stamps[rel][0]) for rel, digest in produced.items()})
    return reused, len(todo)


__all__ = ["PackageBytecode", "compile_prefix", "keys_in_use", "link_kept", "plan"]
