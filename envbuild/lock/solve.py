"""Lock stage: solve a recipe with py-rattler for every platform and write one conda-lock v1
lockfile, plus a per-platform explicit spec file.

Planning is pure (:func:`solve_inputs`, :func:`fingerprint`, :func:`solve_request`,
:func:`to_lockfile`); solves run in the py-rattler worker (all platforms concurrently); the
lockfile is written with conda-lock's own models and writer (schema:
``conda_lock/lockfile/v1/models.py`` in https://github.com/conda/conda-lock) through a staged
file, so ``conda-lock render``, ``conda-lock install`` and micromamba accept it. A relock is a
fresh solve from the recipe; only ``update=`` keeps the other locked packages pinned.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envbuild.channels import KNOWN_SUBDIRS, Route, auth_entries, require_credentials
from envbuild.errors import ChannelError, LockError
from envbuild.lock import conda_lock_api, pypi
from envbuild.lock import diff as lockdiff
from envbuild.lock.diagnose import explain
from envbuild.lock.epoch import EPOCH_KEY, newest_timestamp
from envbuild.lock.lockfile import (  # re-exported: the lock stage's public API
    FINGERPRINT_KEY,
    explicit_path,
    install_records,
    locked_fingerprint,
    read_lockfile,
    render_explicit,
    write_explicit,
    write_lockfile,
)
from envbuild.project import Project
from envbuild.rattler import client as rattler_client
from envbuild.recipe.fingerprint import (
    FINGERPRINT_SCHEMA,
    effective_cutoff,
    fingerprint,
    virtual_packages,
)
from envbuild.recipe.model import Recipe
from envbuild.recipe.validate import display

if TYPE_CHECKING:
    from conda_lock.lockfile.v2prelim.models import Lockfile

log = logging.getLogger("envbuild")
CUTOFF_KEY = "envbuild_exclude_newer"


def solve_request(
    recipe: Recipe,
    project: Project,
    platform: str,
    constraints: tuple[str, ...] = (),
    cutoff: str = "",
) -> dict[str, Any]:
    """The worker request that solves ``recipe`` for ``platform``: channels by their
    transport URLs (mirrors applied), credentials as variable names for py-rattler's
    authentication middleware. Raises ChannelError if a credential variable is not set."""
    routes = [project.route(c) for c in recipe.channels]
    require_credentials(routes)
    return {
        "channels": [r.transport for r in routes],
        "auth": auth_entries(routes),
        "specs": [_fetched_from(project, s) for s in recipe.dependencies],
        "platform": platform,
        "virtual_packages": [list(v) for v in virtual_packages(platform, recipe.virtual_packages)],
        "constraints": list(constraints),
        "cache_dir": str(project.path("repodata_cache")),
        "other_platforms": [p for p in KNOWN_SUBDIRS if p != platform],
        "exclude_newer": cutoff,  # py-rattler's solver drops packages published after it
    }


def _fetched_from(project: Project, spec: str) -> str:
    """``spec`` with a channel (``conda-forge::pandas``) names the channel's transport URL
    (its mirror), which is where the solver's records come from."""
    channel, sep, rest = spec.rpartition("::")
    return f"{project.route(channel).transport}::{rest}" if sep else spec


def _failure(
    recipe: Recipe, project: Project, platform: str, f: rattler_client.WorkerFailure
) -> Exception:
    where = f"{display(recipe.path)}: cannot lock for {platform}"
    if f.type in ("GatewayError", "FetchRepoDataError", "IoError", "InvalidChannelError"):
        routes = [project.route(c) for c in recipe.channels]
        culprits = [r for r in routes if r.transport in f.message] or routes
        hints = "\n".join(project.mirror_hint(r.name) for r in culprits)
        chans = ", ".join(
            f"'{r.name}' ({r.transport})"
            if r.transport == r.canonical
            else f"'{r.name}' ({r.canonical}, mirrored to {r.transport})"
            for r in culprits
        )
        return ChannelError(
            f"{where}: channel {chans} is not reachable:\n  {f.message.strip()}\n{hints}"
        )
    if f.type != "SolverError":
        return LockError(f"{where}: {f.type}: {f.message}")
    try:
        request = solve_request(recipe, project, platform, (), effective_cutoff(recipe, project))
        findings = rattler_client.call("diagnose", request)
        lines = explain(recipe, platform, findings, f.names)
    except rattler_client.RattlerCallError:
        lines = []
    body = "\n".join("  " + ln for ln in lines)
    tree = "\n".join("    " + ln for ln in f.message.strip().splitlines())
    return LockError(f"{where}\n{body}\n  solver explanation:\n{tree}".replace("\n\n", "\n"))


def _pins(old: Lockfile | None, platform: str, update: tuple[str, ...]) -> tuple[str, ...]:
    if old is None:
        return ()
    return tuple(
        f"{p.name} =={p.version} {p.build}"
        for p in old.package
        if p.platform == platform and p.manager == "conda" and p.name not in update
    )


def solve(
    recipe: Recipe,
    project: Project,
    update: tuple[str, ...] = (),
    old: Lockfile | None = None,
    cutoff: str = "",
) -> dict[str, list[dict[str, Any]]]:
    """Solve ``recipe`` for all its platforms concurrently (strict channel priority).

    Without ``update`` this is a fresh solve: ``old`` is ignored. With ``update`` (package
    names), every other package of ``old`` is pinned to its locked version and build.
    Output: platform -> repodata records (JSON dicts). Raises ChannelError for an unreachable
    channel, LockError with plain-language explanations for an unsatisfiable recipe.
    """
    pinned = {p: _pins(old, p, update) if update else () for p in recipe.platforms}
    requests = [solve_request(recipe, project, p, pinned[p], cutoff) for p in recipe.platforms]
    results = rattler_client.call("solve_many", {"requests": requests})
    out: dict[str, list[dict[str, Any]]] = {}
    for platform, result in zip(recipe.platforms, results, strict=True):
        if isinstance(result, dict):
            e = result["error"]
            f = rattler_client.WorkerFailure(e["type"], e["message"], tuple(e["names"]))
            raise _failure(recipe, project, platform, f)
        out[platform] = result
    return out


def _glibc(recipe: Recipe, platform: str) -> str:
    vps = {n: v for n, v, _ in virtual_packages(platform, recipe.virtual_packages)}
    return vps.get("__glibc", "2.28")


def _dependencies(depends: list[str]) -> dict[str, str]:
    """conda-lock's name -> spec mapping of a record's ``depends``, keeping the whole match
    spec (version and build: ``libgcc 14.2.0 h77fa898_1`` -> ``14.2.0 h77fa898_1``)."""
    out: dict[str, str] = {}
    for dep in depends:
        name, _, rest = dep.strip().partition(" ")
        rest = rest.strip()
        out[name] = f"{out[name]},{rest}" if out.get(name) and rest else (rest or out.get(name, ""))
    return out


def _canonical(routes: list[Route], url: str) -> str:
    for r in routes:
        canonical = r.to_canonical(url)
        if canonical != url:
            return canonical
    return url


def to_lockfile(
    recipe: Recipe,
    project: Project,
    conda: dict[str, list[dict[str, Any]]],
    pip: dict[str, list[dict[str, Any]]],
    lock_path: Path,
    cutoff: str = "",
) -> Lockfile:
    """conda-lock's Lockfile model from solved conda records and resolved PyPI records (pure).

    Conda packages carry their canonical url (mirrors never recorded), md5, sha256 and full
    dependency specs; pip packages url and sha256. The recipe
    fingerprint is in ``metadata.custom_metadata``, and per platform in ``content_hash``;
    so is the newest package timestamp of the solve, the lock's epoch (:mod:`envbuild.lock.epoch`).
    """
    conda_lock_api.prepare()
    from conda_lock.lockfile.v1.models import HashModel, LockMeta
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile

    fp = fingerprint(recipe, project)
    routes = [project.route(c) for c in recipe.channels]
    packages = [
        LockedDependency(
            name=r["name"],
            version=r["version"],
            manager="conda",
            platform=platform,
            dependencies=_dependencies(r.get("depends", [])),
            url=_canonical(routes, r["url"]),
            hash=HashModel(md5=r["md5"], sha256=r["sha256"]),
            build=r["build"],
            categories={"main"},
        )
        for platform, recs in conda.items()
        for r in recs
    ] + [
        LockedDependency(
            name=r["name"],
            version=r["version"],
            manager="pip",
            platform=platform,
            dependencies={},
            url=r["url"],
            hash=HashModel(sha256=r["sha256"]),
            categories={"main"},
        )
        for platform, recs in pip.items()
        for r in recs
    ]
    meta = LockMeta(
        content_hash={p: hashlib.sha256(f"{fp}:{p}".encode()).hexdigest() for p in conda},
        channels=[r.canonical for r in routes],
        platforms=sorted(conda),
        sources=[os.path.relpath(recipe.path.resolve(), lock_path.parent.resolve())],
        custom_metadata={FINGERPRINT_KEY: fp, "envbuild_schema": str(FINGERPRINT_SCHEMA)}
        | ({CUTOFF_KEY: cutoff} if cutoff else {})
        | {EPOCH_KEY: str(newest_timestamp([r for recs in conda.values() for r in recs]))},
    )
    return Lockfile(package=packages, metadata=meta)


@dataclass(frozen=True, slots=True)
class LockResult:
    """A finished lock: the lockfile, explicit files and what changed since the last lock."""

    path: Path
    explicit: tuple[Path, ...]
    changes: tuple[lockdiff.Change, ...]
    changed: bool


def plan_lock(
    recipe: Recipe,
    project: Project,
    update: tuple[str, ...] = (),
    old: Lockfile | None = None,
    cutoff: str | None = None,
) -> Lockfile:
    """Solve ``recipe`` (conda, then PyPI per platform) into a Lockfile model, written
    nowhere. A fresh solve unless ``update`` names packages (then ``old`` pins the rest).
    ``cutoff`` (UTC ``YYYY-MM-DDTHH:MM:SSZ``) overrides the recipe's or project's
    ``exclude-newer``; the one used is recorded in the lock's metadata."""
    cutoff = effective_cutoff(recipe, project) if cutoff is None else cutoff
    conda_lock_api.preload()  # on a thread: overlaps the solve in the worker process
    conda = solve(recipe, project, update, old, cutoff)
    pip = {
        p: pypi.resolve(recipe, p, recs, _glibc(recipe, p))
        for p, recs in conda.items()
        if recipe.pypi_dependencies
    }
    return to_lockfile(recipe, project, conda, pip, project.lockfile(recipe.name), cutoff)


def publish_lock(
    recipe: Recipe, project: Project, new: Lockfile, old: Lockfile | None
) -> LockResult:
    """Write ``new`` as ``locks/<name>.conda-lock.yml`` with its explicit files and, if the
    file changed, the diff reports (printed too)."""
    path = project.lockfile(recipe.name)
    changes = lockdiff.diff(old, new)
    before = path.read_bytes() if path.exists() else None
    write_lockfile(new, path)
    explicit = write_explicit(new, project, recipe.name)
    changed = before != path.read_bytes()
    if changed:
        lockdiff.write_reports(project.path("reports"), recipe.name, changes)
        log.info(
            "locked %s: %s\n%s",
            recipe.name,
            lockdiff.summary(changes),
            lockdiff.to_markdown(recipe.name, changes) if changes else "",
        )
    counts: dict[str, int] = {}
    for p in new.package:
        counts[p.platform] = counts.get(p.platform, 0) + 1
    log.info(
        "locked %s: %s",
        recipe.name,
        ", ".join(f"{c} packages for {p}" for p, c in sorted(counts.items())),
    )
    return LockResult(path, tuple(explicit), tuple(changes), changed)


def lock_recipe(recipe: Recipe, project: Project, update: tuple[str, ...] = ()) -> LockResult:
    """Solve ``recipe`` and write ``locks/<name>.conda-lock.yml``, the explicit files and, if
    the lock changed, the diff reports.

    Raises ChannelError/LockError; the existing lockfile is untouched on failure.
    """
    path = project.lockfile(recipe.name)
    old = read_lockfile(path) if path.exists() else None
    if update and old is None:
        msg = f"{display(path)}: nothing locked yet, so nothing to update; run `doit lock`"
        raise LockError(msg)
    return publish_lock(recipe, project, plan_lock(recipe, project, update, old), old)


__all__ = [
    "FINGERPRINT_KEY",
    "LockResult",
    "explicit_path",
    "fingerprint",
    "install_records",
    "lock_recipe",
    "locked_fingerprint",
    "plan_lock",
    "publish_lock",
    "read_lockfile",
    "render_explicit",
    "solve",
    "to_lockfile",
    "write_explicit",
    "write_lockfile",
]
