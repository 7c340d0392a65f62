"""Garbage collection: builds beyond the kept number, tarballs and images of builds no longer
kept, and package-cache entries that no kept lockfile references. Never the current or the
rollback build. :func:`plan` is side-effect free; :func:`collect` removes what it planned.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from envbuild import build as build_mod
from envbuild import bytecode
from envbuild import image as image_mod
from envbuild._fs import remove_tree
from envbuild.errors import LockError
from envbuild.lock import read_lockfile
from envbuild.project import Project

_ARCHIVE_SUFFIXES = (".conda", ".tar.bz2")


@dataclass(frozen=True, slots=True)
class Garbage:
    """One thing to remove: ``kind`` (build, tarball, image, package), ``what`` (a path or an
    image tag), ``size`` in bytes."""

    kind: str
    what: str
    size: int


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


def _referenced_packages(lockfiles: list[Path]) -> set[str]:
    names = set()
    for path in lockfiles:
        with contextlib.suppress(LockError):
            for p in read_lockfile(path).package:
                fn = p.url.rsplit("/", 1)[-1]
                for suffix in _ARCHIVE_SUFFIXES:
                    fn = fn.removesuffix(suffix)
                names.add(fn)
    return names


def plan(project: Project, use_engine: bool = True) -> list[Garbage]:
    """Everything :func:`collect` would remove, with sizes. Reads only."""
    garbage: list[Garbage] = []
    kept_ids: dict[str, set[str]] = {}
    bytecode_keys: set[str] = set()
    lockfiles = sorted(project.path("locks").glob("*.conda-lock.yml"))
    builds_dir = project.path("envs") / build_mod.BUILDS_DIR
    names = (
        sorted(d.name for d in builds_dir.iterdir() if d.is_dir()) if builds_dir.is_dir() else []
    )
    for name in names:
        removable = build_mod.stale_builds(project, name, project.keep_builds)
        keep = [d for d in build_mod.build_dirs(project, name) if d not in removable]
        kept_ids[name] = {d.name for d in keep}
        for d in keep:
            bytecode_keys |= bytecode.keys_in_use(d)
        lockfiles += [build_mod.lock_copy(d) for d in keep if build_mod.lock_copy(d).exists()]
        garbage += [Garbage("build", str(d), _size(d)) for d in removable]
    history = project.path("dist") / "history"
    for tb in sorted(history.glob("*/*")) if history.is_dir() else []:
        if tb.name.split(".", 1)[0] not in kept_ids.get(tb.parent.name, set()):
            garbage.append(Garbage("tarball", str(tb), _size(tb)))
    if use_engine and image_mod.engine_available():
        for img in image_mod.images():
            name = img.tag.split("/", 1)[-1].split(":", 1)[0]
            if img.build_id and img.build_id not in kept_ids.get(name, set()):
                garbage.append(Garbage("image", img.tag, img.size))
    referenced = _referenced_packages(lockfiles)
    cache = project.path("package_cache")
    for entry in sorted(cache.iterdir()) if cache.is_dir() else []:
        if entry.is_dir() and entry.name not in referenced:
            garbage.append(Garbage("package", str(entry), _size(entry)))
    pycs = project.path("bytecode_cache")
    for entry in sorted(pycs.iterdir()) if pycs.is_dir() else []:
        if entry.is_dir() and entry.name not in bytecode_keys:
            garbage.append(Garbage("bytecode", str(entry), _size(entry)))
    return garbage


def collect(project: Project, items: list[Garbage]) -> int:
    """Remove ``items`` (from :func:`plan`); returns the bytes freed."""
    freed = 0
    for g in items:
        if g.kind == "image":
            image_mod.remove(g.what)
        elif g.kind == "build":
            with build_mod.build_mutex(project, Path(g.what).parent.name):
                build_mod.remove_build(Path(g.what))
        else:
            remove_tree(Path(g.what))
            lock = ".{}.lock" if g.kind == "bytecode" else "{}.lock"
            remove_tree(Path(g.what).with_name(lock.format(Path(g.what).name)))
        freed += g.size
    return freed


def table(items: list[Garbage]) -> str:
    """One line per item and a total, sizes in MB."""
    lines = [f"{g.kind:8s} {g.size / 1e6:9.1f} MB  {g.what}" for g in items]
    total = sum(g.size for g in items)
    lines.append(f"{len(items)} item(s), {total / 1e6:.1f} MB")
    return "\n".join(lines)
