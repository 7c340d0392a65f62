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
* Only what the packages do not ship: a ``.py`` whose ``.pyc`` for this interpreter's tag the
  package itself installs (conda-forge's compiled packages) is left alone; noarch: python
  packages, which conda compiles at link time, and our offline packages are compiled.
* In parallel and while the installer runs (:class:`Bytecode`): as soon as the interpreter's
  package is linked, each package whose ``conda-meta`` record has appeared (py-rattler writes
  it after the package's files) is compiled in place by a pool of interpreters
  (:mod:`envbuild.install.compiler`), one per core; the bytes are those of compiling after the
  install (same sources, same recorded path).
* Kept in the bytecode cache (default ``<package cache>-pyc/<key>/``,
  :mod:`envbuild.install.pyc_cache`), ``key`` being the sha256 of the package's archive
  sha256, the interpreter's record and the bytecode tag (``cpython-311``): a changed package or
  interpreter never reuses stale bytecode. Each kept file must still have the size and mtime it
  had when hashed before it is linked again (a file edited through a hard link is never
  reused).
* Recorded in each package's ``conda-meta`` record as ``pyc_file`` entries (conda's path type
  for bytecode it compiles itself), with sha256, so verify, pack, gc and the image treat them as
  part of the environment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envbuild.install import pyc_cache
from envbuild.install.compiler import Compiler
from envbuild.prefix.meta import read_record, read_records, record_files
from envbuild.util.fs import atomic_write, file_sha256

log = logging.getLogger("envbuild")

_SKIP_TYPES = ("directory", "softlink", "pyc_file")
_POLL = 0.05  # seconds between looks at conda-meta while the installer runs


@dataclass(frozen=True, slots=True)
class PackageBytecode:
    """The ``.py`` files of one installed package and where their bytecode goes."""

    record: Path  # conda-meta/<name>-<version>-<build>.json
    key: str  # bytecode cache key (64 hex)
    sources: tuple[str, ...]  # prefix-relative .py paths
    pycs: tuple[str, ...]  # prefix-relative __pycache__/<stem>.<tag>.pyc paths, same order
    sizes: tuple[int, ...] = ()  # bytes of each source, as recorded (0: unknown)


def pyc_path(source: str, tag: str) -> str:
    """Where PEP 3147 puts the bytecode of ``source`` (a ``/``-separated relative ``.py``
    path) for bytecode ``tag`` (``cpython-311``): ``<dir>/__pycache__/<stem>.<tag>.pyc``."""
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
    records = read_records(prefix)
    found = _interpreter([r for _, r in records])
    return None if found is None else (records, *found)


def _key(record: dict[str, Any], interpreter: str, tag: str) -> str:
    material = f"{record.get('sha256')}\n{interpreter}\n{tag}\nchecked-hash\nprefix-relative"
    return hashlib.sha256(material.encode()).hexdigest()


def _package(meta: Path, rec: dict[str, Any], interpreter: str, tag: str) -> PackageBytecode | None:
    """The bytecode plan of one conda-meta record (None: no ``.py`` files that need it)."""
    entries = rec.get("paths_data", {}).get("paths", [])
    have = {e["_path"] for e in entries}
    wanted = [
        e
        for e in entries
        if e["_path"].endswith(".py")
        and e.get("path_type") not in _SKIP_TYPES
        and pyc_path(e["_path"], tag) not in have  # shipped by the package itself
    ]
    if not wanted:
        return None
    sources = tuple(e["_path"] for e in wanted)
    pycs = tuple(pyc_path(s, tag) for s in sources)
    sizes = tuple(int(e.get("size_in_bytes") or 0) for e in wanted)
    return PackageBytecode(meta, _key(rec, interpreter, tag), sources, pycs, sizes)


def plan(prefix: Path) -> list[PackageBytecode]:
    """What to compile in ``prefix`` (reads conda-meta only): for each package with ``.py``
    files, their bytecode paths and cache key. Empty without a CPython in the environment."""
    found = _records(prefix)
    if found is None:
        return []
    records, interpreter, tag = found
    packages = (_package(meta, rec, interpreter, tag) for meta, rec in records)
    return [p for p in packages if p is not None]


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


def _record(package: PackageBytecode, manifest: pyc_cache.Manifest) -> None:
    """Add the package's bytecode (path -> (sha256, size)) to its conda-meta record as
    ``pyc_file`` entries."""
    data = read_record(package.record)
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
) -> dict[str, pyc_cache.Manifest]:
    """Link (``link``) or copy into ``prefix`` the kept bytecode of ``records`` (the lock's
    install records), before or while py-rattler installs the packages themselves: the
    cache key needs only each record's sha256 and the interpreter's. Touches no conda-meta.

    Output: cache key -> manifest of what was linked. Packages without kept bytecode are left
    out. Never raises for a missing or damaged cache entry (it is compiled again later)."""
    found = _interpreter(records)
    if found is None:
        return {}
    interpreter, tag = found
    linked = {}
    for record in records:
        key = _key(record, interpreter, tag)
        manifest = pyc_cache.link_entry(cache, key, prefix, link)
        if manifest is not None:
            linked[key] = manifest
    return linked


class Bytecode:
    """The bytecode of one build into ``prefix`` of the lock's install ``records``: kept
    bytecode linked and the rest compiled while the installer runs (:meth:`start`), what
    is left after it (:meth:`finish`), all recorded in conda-meta. :meth:`abandon` stops
    everything writing into ``prefix`` (before it is emptied or removed)."""

    def __init__(
        self,
        prefix: Path,
        cache: Path,
        records: list[dict[str, Any]],
        link: bool = True,
        workers: int | None = None,
    ) -> None:
        self.prefix, self.cache, self.records, self.link = prefix, cache, records, link
        self.workers = workers
        self.found = _interpreter(records)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._error: BaseException | None = None
        self._reset()

    def _reset(self) -> None:
        self.linked: dict[str, pyc_cache.Manifest] = {}
        self.compiled: dict[str, pyc_cache.Manifest] = {}
        self.submitted: dict[str, PackageBytecode] = {}
        self._compiler: Compiler | None = None

    def start(self) -> None:
        """In a thread: link the kept bytecode, then compile each package the installer has
        finished, once the interpreter's own package is there."""
        if self.found is not None:
            self._watcher = threading.Thread(target=self._watch, daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        assert self.found is not None
        interpreter, tag = self.found
        try:
            self.linked = link_kept(self.prefix, self.cache, self.records, self.link)
            metas = {r["name"]: "{name}-{version}-{build}.json".format(**r) for r in self.records}
            # py-rattler writes a record once the package's files are all there: the
            # interpreter can run when its own record exists
            python = self.prefix / "conda-meta" / metas["python"]
            # records whose bytecode was linked are never read (a rebuild reads none)
            seen = {metas[r["name"]] for r in self.records if _key(r, *self.found) in self.linked}
            waiting: list[PackageBytecode] = []
            while not self._stop.is_set():
                for meta in record_files(self.prefix):
                    if meta.name in seen:
                        continue
                    try:  # being written (a later look reads it) or a stray file
                        rec = read_record(meta)
                    except (OSError, ValueError):
                        continue
                    seen.add(meta.name)
                    package = _package(meta, rec, interpreter, tag)
                    if package is not None and package.key not in self.linked:
                        waiting.append(package)
                if waiting and python.exists():
                    for package in waiting:
                        self._submit(package)
                    waiting = []
                self._stop.wait(_POLL)
        except BaseException as e:  # raised by finish()
            self._error = e

    def _submit(self, package: PackageBytecode) -> None:
        if self._compiler is None:
            python = self.prefix / "bin" / "python"
            self._compiler = Compiler(python, self.prefix, self._done, self.workers)
        self.submitted[package.key] = package
        self._compiler.add(package.key, list(zip(package.sources, package.sizes, strict=True)))

    def _done(self, key: str) -> None:
        """One package compiled (a compiler thread): hash its bytecode and keep it."""
        package = self.submitted[key]
        produced = {
            rel: file_sha256(self.prefix / rel)
            for rel in package.pycs
            if (self.prefix / rel).exists()
        }
        manifest = pyc_cache.keep(self.cache, key, self.prefix, produced, self.link)
        with self._lock:
            self.compiled[key] = manifest

    def _stop_watching(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None

    def abandon(self) -> None:
        """Stop linking and compiling into ``prefix`` and forget what was done there (the
        prefix is about to be emptied or removed); kept cache entries stay. Idempotent."""
        self._stop_watching()
        if self._compiler is not None:
            self._compiler.abandon()
        self._error = None
        self._reset()

    def finish(self) -> tuple[int, int]:
        """After the install: give every package in ``prefix`` its bytecode (linked from the
        cache, compiled meanwhile, or compiled now) and record it in conda-meta.

        Output: (packages served from the cache, packages compiled). Raises ProcessError if
        an interpreter cannot be started or dies, OSError if the cache cannot be written."""
        self._stop_watching()
        if self._error is not None:
            self.abandon()
            raise self._error
        packages = plan(self.prefix)
        try:
            for package in packages:
                if package.key in self.linked or package.key in self.submitted:
                    continue
                manifest = pyc_cache.link_entry(self.cache, package.key, self.prefix, self.link)
                if manifest is not None:
                    self.linked[package.key] = manifest
                else:
                    self._submit(package)
            if self._compiler is not None:
                self._compiler.finish()
        except BaseException:
            self.abandon()
            raise
        for package in packages:
            manifest = self.linked.get(package.key, self.compiled.get(package.key))
            if manifest is not None:
                _record(package, manifest)
        return len(self.linked), len(self.compiled)


def compile_prefix(prefix: Path, cache: Path, link: bool = True) -> tuple[int, int]:
    """Give every package in the installed ``prefix`` its bytecode (linked from ``cache``
    or compiled there, in parallel) and record it: :class:`Bytecode` without an installer
    running. Output: (packages served from the cache, packages compiled)."""
    found = _records(prefix)
    records = [rec for _, rec in found[0]] if found else []
    return Bytecode(prefix, cache, records, link).finish()


__all__ = ["Bytecode", "PackageBytecode", "compile_prefix", "keys_in_use", "link_kept", "plan"]
