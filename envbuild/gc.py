"""Garbage collection: builds beyond the kept number, tarballs and images of builds no longer
kept, and package-cache entries that no kept lockfile references. Never the current or the
rollback build. :func:`plan` is side-effect free; :func:`collect` removes what it planned.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from envbuild import build as build_mod
from envbuild import bytecode, cache_stamps
from envbuild import image as image_mod
from envbuild.errors import EnvBuildError, LockError
from envbuild.fs import remove_tree, tree_bytes
from envbuild.lock import read_lockfile
from envbuild.mutex import try_hold
from envbuild.project import Project
from envbuild.state import BUILDS_DIR

log = logging.getLogger("envbuild")


@dataclass(frozen=True, slots=True)
class Garbage:
    """One thing to remove: ``kind`` (build, retired (a build already switched away from,
    waiting in its trash), tarball, image, package, bytecode), ``what`` (a path or an image
    tag), ``size`` in bytes."""

    kind: str
    what: str
    size: int


def _referenced_packages(lockfiles: list[Path]) -> set[str]:
    names = set()
    for path in lockfiles:
        with contextlib.suppress(LockError):
            for p in read_lockfile(path).package:
                names.add(cache_stamps.entry_name(p.url.rsplit("/", 1)[-1]))
    return names


def plan(project: Project, use_engine: bool = True) -> list[Garbage]:
    """Everything :func:`collect` would remove, with sizes. Reads only."""
    garbage: list[Garbage] = []
    kept_ids: dict[str, set[str]] = {}
    bytecode_keys: set[str] = set()
    lockfiles = sorted(project.path("locks").glob("*.conda-lock.yml"))
    builds_dir = project.path("envs") / BUILDS_DIR
    names = sorted(
        d.name
        for d in (builds_dir.iterdir() if builds_dir.is_dir() else [])
        if d.is_dir() and not d.name.startswith(".")  # .<name>.trash: retired builds
    )
    for name in names:
        removable = build_mod.stale_builds(project, name, project.keep_builds)
        keep = [d for d in build_mod.build_dirs(project, name) if d not in removable]
        kept_ids[name] = {d.name for d in keep}
        for d in keep:
            bytecode_keys |= bytecode.keys_in_use(d)
        lockfiles += [build_mod.lock_copy(d) for d in keep if build_mod.lock_copy(d).exists()]
        garbage += [Garbage("build", str(d), tree_bytes(d)) for d in removable]
    garbage += [
        Garbage("retired", str(d), tree_bytes(d)) for _, d in build_mod.retired_builds(project)
    ]
    history = project.path("dist") / "history"
    for tb in sorted(history.glob("*/*")) if history.is_dir() else []:
        if tb.name.split(".", 1)[0] not in kept_ids.get(tb.parent.name, set()):
            garbage.append(Garbage("tarball", str(tb), tree_bytes(tb)))
    if use_engine and image_mod.engine_available():
        for image_id, size in image_mod.dangling():
            garbage.append(Garbage("image", image_id, size))
        for img in image_mod.images():
            name = img.tag.split("/", 1)[-1].split(":", 1)[0]
            # only this project's environments: the engine is shared with other projects
            if name in kept_ids and img.build_id and img.build_id not in kept_ids[name]:
                garbage.append(Garbage("image", img.tag, img.size))
    referenced = _referenced_packages(lockfiles)
    cache = project.path("package_cache")
    for entry in sorted(cache.iterdir()) if cache.is_dir() else []:
        if entry.is_dir() and entry.name not in referenced:
            garbage.append(Garbage("package", str(entry), tree_bytes(entry)))
    pycs = project.path("bytecode_cache")
    for entry in sorted(pycs.iterdir()) if pycs.is_dir() else []:
        if entry.is_dir() and entry.name not in bytecode_keys:
            garbage.append(Garbage("bytecode", str(entry), tree_bytes(entry)))
    return garbage


def collect(project: Project, items: list[Garbage]) -> int:
    """Remove ``items`` (from :func:`plan`); returns the bytes freed.

    Builds are removed under their environment's build mutex and only if a fresh plan made
    under it still finds them stale (a build running while gc planned has finished since, and
    may be current now). A package-cache entry is removed only under py-rattler's lock of that
    entry, skipped while a running install holds it."""
    freed = 0
    by_env: dict[str, list[Garbage]] = {}
    for g in items:
        if g.kind == "build":
            by_env.setdefault(Path(g.what).parent.name, []).append(g)
    for name, planned in by_env.items():
        with build_mod.build_mutex(project, name):
            still = {str(d) for d in build_mod.stale_builds(project, name, project.keep_builds)}
            for g in planned:
                if g.what in still:
                    build_mod.remove_build(Path(g.what))
                    freed += g.size
    owners = {str(d): name for name, d in build_mod.retired_builds(project)}
    for g in items:
        if g.kind == "retired" and g.what in owners:
            with build_mod.build_mutex(project, owners[g.what]):  # a build empties it too
                if Path(g.what).exists():
                    remove_tree(Path(g.what))
                    freed += g.size
    for g in items:
        if g.kind == "image":
            try:
                image_mod.remove(g.what)
            except EnvBuildError as e:  # e.g. still used by a container: left, and said
                log.warning("gc: image %s not removed: %s", g.what, str(e).splitlines()[-1])
                continue
        elif g.kind == "package":
            entry = Path(g.what)
            with try_hold(entry.with_name(entry.name + ".lock")) as held:
                if not held:
                    continue
                remove_tree(entry)
        elif g.kind not in ("build", "retired"):
            remove_tree(Path(g.what))
            lock = ".{}.lock" if g.kind == "bytecode" else "{}.lock"
            remove_tree(Path(g.what).with_name(lock.format(Path(g.what).name)))
        else:
            continue
        freed += g.size
    return freed


def table(items: list[Garbage]) -> str:
    """One line per item and a total, sizes in MB."""
    lines = [f"{g.kind:8s} {g.size / 1e6:9.1f} MB  {g.what}" for g in items]
    total = sum(g.size for g in items)
    lines.append(f"{len(items)} item(s), {total / 1e6:.1f} MB")
    return "\n".join(lines)
