"""Garbage collection: builds beyond the kept number, tarballs and images of builds no longer
kept (this project's images only: the engine may be shared), leftovers of interrupted
writes, and package-cache entries that no kept lockfile references. Never the current or the
rollback build, nor what they need. :func:`plan` is side-effect free; :func:`collect`
removes what it planned, per environment under its build mutex.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from envbuild.errors import EnvBuildError, LockError
from envbuild.install import build as build_mod
from envbuild.install import bytecode, trash
from envbuild.layout import BUILDS_DIR
from envbuild.lock.solve import read_lockfile
from envbuild.ops import promotion
from envbuild.project import Project
from envbuild.rattler import cache_stamps
from envbuild.ship import engine as image_mod
from envbuild.stages.docker import engine_available
from envbuild.util.fs import remove_tree, tree_bytes
from envbuild.util.mutex import try_hold

log = logging.getLogger("envbuild")


@dataclass(frozen=True, slots=True)
class Garbage:
    """One thing to remove: ``kind`` (build, retired (a build already switched away from,
    waiting in its trash), tarball, image, leftover (a ``*.tmp`` or ``.link-*`` of an
    interrupted write), package, bytecode), ``what`` (a path or an image tag or id),
    ``size`` in bytes, ``env``: the environment it belongs to ("" for shared caches)."""

    kind: str
    what: str
    size: int
    env: str = ""


def _referenced_packages(lockfiles: list[Path]) -> set[str]:
    names = set()
    for path in lockfiles:
        with contextlib.suppress(LockError):
            for p in read_lockfile(path).package:
                names.add(cache_stamps.entry_name(p.url.rsplit("/", 1)[-1]))
    return names


def _env_names(project: Project) -> list[str]:
    """Every environment with builds, retired builds or kept tarballs."""
    builds_dir = project.path("envs") / BUILDS_DIR
    names = {
        d.name
        for d in (builds_dir.iterdir() if builds_dir.is_dir() else [])
        if d.is_dir() and not d.name.startswith(".")  # .<name>.trash: retired builds
    }
    names |= {name for name, _ in trash.retired_builds(project)}
    history = project.path("dist") / "history"
    names |= {d.name for d in (history.iterdir() if history.is_dir() else []) if d.is_dir()}
    return sorted(names)


def plan_env(
    project: Project, name: str, use_engine: bool = True
) -> tuple[list[Garbage], list[Path]]:
    """What :func:`collect` would remove of environment ``name`` (builds beyond the kept
    number, retired builds, kept tarballs and this project's images of builds no longer
    kept, leftovers of interrupted writes), and the builds it keeps. Reads only; exact only
    under the environment's build mutex, which every writer of these holds."""
    removable = build_mod.stale_builds(project, name, project.keep_builds)
    keep = [d for d in build_mod.build_dirs(project, name) if d not in removable]
    kept_ids = {d.name for d in keep}
    garbage = [Garbage("build", str(d), tree_bytes(d), name) for d in removable]
    garbage += [
        Garbage("retired", str(d), tree_bytes(d), name)
        for owner, d in trash.retired_builds(project)
        if owner == name
    ]
    history = project.path("dist") / "history" / name
    for tb in sorted(history.iterdir()) if history.is_dir() else []:
        if not tb.name.startswith(".") and tb.name.split(".", 1)[0] not in kept_ids:
            garbage.append(Garbage("tarball", str(tb), tree_bytes(tb), name))
    garbage += [
        Garbage("leftover", str(p), tree_bytes(p), name) for p in promotion.leftovers(project, name)
    ]
    if use_engine and engine_available():
        pid = image_mod.project_id(project.root)
        for image_id, size in image_mod.dangling(pid, name):
            garbage.append(Garbage("image", image_id, size, name))
        for img in image_mod.images(pid, name):
            if img.build_id not in kept_ids:
                garbage.append(Garbage("image", img.tag, img.size, name))
    return garbage, keep


def plan(project: Project, use_engine: bool = True) -> list[Garbage]:
    """Everything :func:`collect` would remove, with sizes. Reads only."""
    garbage: list[Garbage] = []
    bytecode_keys: set[str] = set()
    lockfiles = sorted(project.path("locks").glob("*.conda-lock.yml"))
    for name in _env_names(project):
        mine, keep = plan_env(project, name, use_engine)
        garbage += mine
        for d in keep:
            bytecode_keys |= bytecode.keys_in_use(d)
        lockfiles += [build_mod.lock_copy(d) for d in keep if build_mod.lock_copy(d).exists()]
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


def _remove(g: Garbage) -> bool:
    if g.kind == "build":
        build_mod.remove_build(Path(g.what))
    elif g.kind == "image":
        try:
            image_mod.remove(g.what)
        except EnvBuildError as e:  # e.g. still used by a container: left, and said
            log.warning("gc: image %s not removed: %s", g.what, str(e).splitlines()[-1])
            return False
    else:
        remove_tree(Path(g.what))
    return True


def collect(project: Project, items: list[Garbage]) -> int:
    """Remove the garbage of each environment that ``items`` (from :func:`plan`) names, and
    its package-cache and bytecode entries; returns the bytes freed.

    An environment's garbage is planned again and removed under its build mutex, the lock
    every writer of its five artifacts holds: a nightly, build or rollback running while
    gc planned has finished since, and what is current or the rollback build now is kept,
    with its kept tarball and image. A package-cache entry is removed only under
    py-rattler's lock of that entry, skipped while a running install holds it."""
    freed = 0
    envs = sorted({g.env for g in items if g.env})
    use_engine = any(g.kind == "image" for g in items) or engine_available()
    for name in envs:
        with build_mod.build_mutex(project, name):
            promotion.recover(project, name)
            fresh, _ = plan_env(project, name, use_engine)
            freed += sum(g.size for g in fresh if _remove(g))
    for g in items:
        if g.kind == "package":
            entry = Path(g.what)
            with try_hold(entry.with_name(entry.name + ".lock")) as held:
                if not held:
                    continue
                remove_tree(entry)
        elif g.kind == "bytecode":
            remove_tree(Path(g.what))
            remove_tree(Path(g.what).with_name(f".{Path(g.what).name}.lock"))
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
