"""Build stage: install exactly the locked packages into a fresh prefix, then switch to it.

``envs/<name>`` is a symlink to ``envs/.builds/<name>/<build id>``. A build installs into a new
build directory (its final path, so prefix rewriting is right) that nothing uses yet, writes a
completion marker last, then repoints the symlink with one ``os.replace``. A failure or Ctrl-C
at any point leaves the previous environment in place and importable; the half-built directory
is removed at once, or by the next build if the process was killed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from envbuild.channels import Route, auth_entries, require_credentials
from envbuild.errors import BuildError
from envbuild.install import bytecode
from envbuild.install.trash import empty_trash, retire_build, trash_dir
from envbuild.layout import (
    BUILDS_DIR,
    builds_root,
    candidate_dir,
    lock_copy,
    marker_path,
    read_marker,
)
from envbuild.lock import pypi
from envbuild.lock.lockfile import LockedPackages, install_records, read_packages
from envbuild.project import Project
from envbuild.rattler import client as rattler_client
from envbuild.rattler.protocol import FailureKind, InstallRequest
from envbuild.recipe.fingerprint import fingerprint
from envbuild.recipe.model import Recipe, current_subdir
from envbuild.recipe.validate import display
from envbuild.records import BuildInfo, Candidate
from envbuild.util import progress
from envbuild.util.fs import (
    atomic_write,
    file_sha256,
    reflink_supported,
    remove_tree,
    replace_symlink,
)
from envbuild.util.mutex import hold

log = logging.getLogger("envbuild")


def new_build_id(lock_sha: str, now: float | None = None) -> str:
    """``YYYYmmddTHHMMSSmmmZ-<12 hex of the lockfile sha256>`` (UTC, with milliseconds: ids
    sort by time, also two builds of different locks within one second)."""
    now = now if now is not None else time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}{int(now * 1000) % 1000:03d}Z-{lock_sha[:12]}"


def _unused_build_id(root: Path, build_id: str) -> str:
    """``build_id``, or with ``-2``, ``-3``... appended if a build of that id exists (two builds
    of one lock within a second must never share, and so delete, a prefix)."""
    candidate, n = build_id, 1
    while (root / candidate).exists() or marker_path(root / candidate).exists():
        n += 1
        candidate = f"{build_id}-{n}"
    return candidate


def _current_target(project: Project, name: str) -> Path | None:
    link = project.env_prefix(name)
    return link.resolve() if link.is_symlink() and link.resolve().exists() else None


def build_dirs(project: Project, name: str) -> list[Path]:
    """Every build directory of ``name``, complete or not, oldest first."""
    root = builds_root(project, name)
    return [d for d in sorted(root.iterdir()) if d.is_dir()] if root.is_dir() else []


def stale_builds(project: Project, name: str, keep: int) -> list[Path]:
    """Build directories to remove (reads only): incomplete ones (killed runs) and complete ones
    beyond the ``keep`` newest. The current build counts towards ``keep``; it and the newest
    other one, the rollback, are never stale."""
    current = _current_target(project, name)
    dirs = build_dirs(project, name)
    stale = [d for d in dirs if read_marker(d) is None and d.resolve() != current]
    others = [d for d in dirs if d not in stale and d.resolve() != current]
    return stale + others[: max(0, len(others) - max(1, keep - 1))]


def clean_stale_builds(project: Project, name: str, keep: int = 2) -> list[Path]:
    """Retire :func:`stale_builds` (:func:`retire_build`) and remove the markers and lock
    copies of builds that are gone. Returns the retired build directories."""
    removed = stale_builds(project, name, keep)
    for d in removed:
        log.info("removing build %s", display(d))
        retire_build(d, trash_dir(project, name))
    root = builds_root(project, name)
    for side in root.iterdir() if root.is_dir() else []:
        if side.is_file() and not (root / side.name.split(".", 1)[0]).is_dir():
            side.unlink()
    return removed


def build_mutex(project: Project, name: str) -> contextlib.AbstractContextManager[None]:
    """One build (or promotion, or rollback) of environment ``name`` at a time."""
    lock = builds_root(project, name).with_name(f".{name}.lock")
    return hold(lock, f"build of environment '{name}'")


def build_env(recipe: Recipe, project: Project) -> Path:
    """Install the locked packages of ``recipe`` for this platform into a new prefix and make
    ``envs/<name>`` point at it. Returns the new prefix (absolute path).

    No solve: the records (url, md5, sha256) come straight from the lockfile. One build of an
    environment runs at a time (a second waits, with a message). Raises LockError if the
    lockfile is missing/invalid, BuildError if it is stale, lacks this platform or the install
    fails; in every failure case the previous environment is untouched.
    """
    with build_mutex(project, recipe.name):
        return build_locked(recipe, project)


def build_locked(recipe: Recipe, project: Project) -> Path:
    """:func:`build_env` for a caller that already holds the build mutex."""
    prefix, info = install_build(recipe, project, project.lockfile(recipe.name))
    promote(project, recipe.name, info.build_id)
    remove_tree(candidate_dir(project, recipe.name))  # current now: no longer a candidate
    return prefix


def candidate_file(project: Project, name: str) -> Path:
    """``build/state/candidate/<name>/candidate.json``: the build id of the build being made
    (written before its directory exists), so that whatever a killed run left is known to
    recovery (:func:`envbuild.ops.promotion.recover` discards it) and never kept as a build."""
    return candidate_dir(project, name) / "candidate.json"


def _note_candidate(project: Project, name: str, build_id: str) -> None:
    """Record ``build_id`` as the candidate; an older candidate's build (of a run that died
    and was never recovered) is removed first: it never became current."""
    noted = Candidate.peek(candidate_file(project, name))
    old = noted.build_id if noted else ""
    current = read_marker(project.env_prefix(name))
    if old and old != build_id and (current is None or current.build_id != old):
        remove_build(builds_root(project, name) / old)
    Candidate(build_id).save(candidate_file(project, name))


def checked_lockfile(recipe: Recipe, project: Project, lock_path: Path) -> LockedPackages:
    """The lockfile at ``lock_path`` (read without conda-lock's models), refused (BuildError)
    if stale for ``recipe``, lacking this machine's platform or naming a package outside the
    recipe's channels; LockError if it is missing or not a valid lockfile."""
    lockfile = read_packages(lock_path)
    platform = current_subdir()
    if lockfile.fingerprint != fingerprint(recipe, project):
        msg = (
            f"{display(lock_path)} is stale: {display(recipe.path)} changed since it was "
            "locked; run `doit lock` first"
        )
        raise BuildError(msg)
    if platform not in lockfile.platforms:
        msg = (
            f"{display(lock_path)} has no packages for this machine's platform {platform} "
            f"(locked: {', '.join(lockfile.platforms)}); add {platform} to "
            f"'platforms' in {display(recipe.path)} (or to [lock] platforms in envbuild.toml) "
            "and run `doit lock`"
        )
        raise BuildError(msg)
    extra = sorted(set(lockfile.platforms) - set(recipe.platforms))
    if extra:
        msg = (
            f"{display(lock_path)} is locked for {', '.join(extra)}, which "
            f"{display(recipe.path)} does not list (platforms: {', '.join(recipe.platforms)}); "
            "the lockfile was edited by hand: run `doit lock` to regenerate it"
        )
        raise BuildError(msg)
    canonical = [project.route(c).canonical for c in recipe.channels]
    for p in lockfile.packages:
        # <channel>/<subdir>/<file>, nothing between (read_packages checked subdir and file)
        if p["manager"] == "conda" and p["url"].rsplit("/", 2)[0] not in canonical:
            msg = (
                f"{display(lock_path)}: package {p['name']} ({p['platform']}) has url "
                f"{p['url']}, which "
                f"is not under the recipe's channels ({', '.join(canonical)}); the lockfile was "
                "edited by hand or made for other channels: run `doit lock` to regenerate it"
            )
            raise BuildError(msg)
    return lockfile


def install_build(recipe: Recipe, project: Project, lock_path: Path) -> tuple[Path, BuildInfo]:
    """Install the lockfile at ``lock_path`` into a new build directory, without making it
    current. Its id is recorded as the candidate (:func:`candidate_file`) before the
    directory is made; the lockfile is copied beside it, the completion marker written
    last. Returns (prefix, marker). On any failure the build directory is removed."""
    lockfile = checked_lockfile(recipe, project, lock_path)
    platform = current_subdir()
    records = install_records(lockfile, platform)
    pip_records = install_records(lockfile, platform, "pip")
    lock_sha = file_sha256(lock_path)
    clean_stale_builds(project, recipe.name, project.keep_builds)
    build_id = _unused_build_id(builds_root(project, recipe.name), new_build_id(lock_sha))
    prefix = builds_root(project, recipe.name) / build_id
    _note_candidate(project, recipe.name, build_id)  # journaled before the directory exists
    prefix.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    cache, link = project.path("bytecode_cache"), project.link_mode == "auto"
    # while the worker process installs the packages, a thread links the kept bytecode and
    # compiles each package the installer has finished; another deletes the builds earlier
    # switches retired
    pyc = bytecode.Bytecode(prefix, cache, records, link)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            emptying = pool.submit(empty_trash, project, recipe.name)
            pyc.start()
            # a retry empties the prefix: everything writing into it stops first
            _install(records, prefix, project, platform, recipe, pyc.abandon)
            emptying.result()
        reused, compiled = pyc.finish()
        log.info("bytecode for %s: %d packages linked, %d compiled", recipe.name, reused, compiled)
        pypi.install(prefix, pip_records, recipe)
        info = BuildInfo(
            recipe.name,
            build_id,
            platform,
            lock_sha,
            str(lockfile.fingerprint),
            len(records) + len(pip_records),
            round(time.monotonic() - start, 3),
            str(prefix),
        )
        atomic_write(lock_copy(prefix), lock_path.read_bytes())
        info.save(marker_path(prefix))
    except BaseException:
        pyc.abandon()  # nothing writes into the prefix while it is removed
        remove_build(prefix)
        remove_tree(candidate_dir(project, recipe.name))  # nothing else is staged yet
        raise
    log.info("built %s: %d packages in %.1f s", recipe.name, info.packages, info.seconds)
    return prefix, info


def remove_build(prefix: Path) -> None:
    """Remove a build directory with its marker (first) and lock copy."""
    remove_tree(marker_path(prefix))
    remove_tree(lock_copy(prefix))
    remove_tree(prefix)


def promote(project: Project, name: str, build_id: str) -> None:
    """Make build ``build_id`` the current ``envs/<name>`` in one atomic step (a symlink
    replaced with os.replace), then drop builds beyond the kept number."""
    replace_symlink(project.env_prefix(name), f"{BUILDS_DIR}/{name}/{build_id}")
    clean_stale_builds(project, name, project.keep_builds)


def complete_builds(project: Project, name: str) -> list[Path]:
    """Complete build directories of ``name``, oldest first (build ids sort by time)."""
    return [d for d in build_dirs(project, name) if read_marker(d) is not None]


def retry_policy() -> tuple[int, float]:
    """(attempts, first back-off in seconds) for downloads: ``ENVBUILD_DOWNLOAD_ATTEMPTS``
    (default 4) and ``ENVBUILD_RETRY_BACKOFF`` (default 1.0; doubles each retry)."""
    attempts = int(os.environ.get("ENVBUILD_DOWNLOAD_ATTEMPTS", "4"))
    backoff = float(os.environ.get("ENVBUILD_RETRY_BACKOFF", "1.0"))
    return max(1, attempts), max(0.0, backoff)


def _install(
    records: list[dict[str, Any]],
    prefix: Path,
    project: Project,
    platform: str,
    recipe: Recipe,
    settle: Callable[[], object] = lambda: None,
) -> int:
    """Install ``records`` into ``prefix`` with the py-rattler worker, retrying broken
    downloads from an empty prefix (``settle`` is called first: whatever else writes into
    the prefix must have finished). Returns the number of attempts made. Raises BuildError."""
    routes = [project.route(c) for c in recipe.channels]
    require_credentials(routes)
    request = InstallRequest(
        records=tuple(_fetch_record(r, routes) for r in records),
        prefix=str(prefix),
        platform=platform,
        cache_dir=str(project.path("package_cache")),
        auth=auth_entries(routes),
        specs=tuple(recipe.dependencies),
        link_mode=project.link_mode,
        reflink=project.link_mode == "auto"
        and reflink_supported(project.path("package_cache"), prefix.parent),
    )
    attempts, backoff = retry_policy()
    for attempt in range(1, attempts + 1):
        try:
            live = progress.interactive()
            sent = dataclasses.replace(request, show_progress=live)
            rattler_client.call("install", sent.to_json(), progress=live)
            return attempt
        except rattler_client.RattlerCallError as e:
            failure = e.failure
            if failure.kind is FailureKind.CHECKSUM:
                details = tuple(_named(d, request.records) for d in failure.details)
                raise BuildError(_mismatch_message(recipe, details)) from None
            transient = failure.kind is FailureKind.NETWORK
            if transient and attempt < attempts:
                delay = backoff * 2 ** (attempt - 1)
                log.warning(
                    "download failed (attempt %d of %d), retrying in %.1f s: %s",
                    attempt,
                    attempts,
                    delay,
                    failure.message.splitlines()[0],
                )
                settle()
                remove_tree(prefix)  # start the next attempt from an empty prefix
                time.sleep(delay)
                continue
            tried = f" after {attempt} attempts" if transient else ""
            hints = [project.mirror_hint(r.name) for r in routes if r.name in project.mirrors]
            hint = "".join(f"\n  {h}" for h in hints if failure.unreachable)
            msg = (
                f"{display(recipe.path)}: installing the locked packages into "
                f"{display(prefix)} failed{tried}:\n  {failure.type}: {failure.message}{hint}"
            )
            raise BuildError(msg) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def _fetch_record(record: dict[str, Any], routes: list[Route]) -> dict[str, Any]:
    """A lock record for the worker: ``url`` where to fetch it (its channel's mirror), the
    canonical url and channel to record."""
    route = next((r for r in routes if r.owns(record["url"])), None)
    transport = route.to_transport(record["url"]) if route else record["url"]
    return dict(
        record,
        url=transport,
        channel=transport.rsplit("/", 2)[0],
        canonical_url=record["url"],
        canonical_channel=route.canonical if route else record["channel"],
    )


def _named(detail: dict[str, str], records: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """A checksum failure's ``detail`` with the package ``name`` and canonical ``url`` of the
    record fetched from ``detail["transport"]`` (py-rattler's message names only the URL)."""
    if "name" in detail and "url" in detail:
        return detail
    url = detail["transport"]
    rec = next((r for r in records if r["url"] == url), {"name": "?", "canonical_url": url})
    return {**detail, "name": rec["name"], "url": rec["canonical_url"]}


def _mismatch_message(recipe: Recipe, details: tuple[dict[str, str], ...]) -> str:
    lines = [
        f"{display(recipe.path)}: refusing to install packages that are not the ones the "
        "lockfile names (nothing was installed or promoted; the current environment stays):"
    ]
    for d in details:
        via = f"\n      fetched from {d['transport']}" if d["transport"] != d["url"] else ""
        lines.append(
            f"  {d['name']}: {d['url']}{via}\n      expected sha256 {d['expected']}"
            f"\n      actual   sha256 {d['actual']}"
        )
    lines.append(
        "  fix: restore the archive on the channel or mirror, or, if the channel really "
        "changed it, run `doit lock` to lock the new one"
    )
    return "\n".join(lines)
