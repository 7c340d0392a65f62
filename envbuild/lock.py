"""Lock stage: solve a recipe with py-rattler and write a conda-lock v1 lockfile.

Planning is pure (:func:`fingerprint`, :func:`solve_request`, :func:`to_lockfile`); the solve
runs in the py-rattler worker; the lockfile is written with conda-lock's own models and writer
(schema: https://github.com/conda/conda-lock, ``conda_lock/lockfile/v1/models.py``) through a
staged file, so ``conda-lock render``, ``conda-lock install`` and micromamba accept it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from conda_lock.lockfile import parse_conda_lock_file, write_conda_lock_file
from conda_lock.lockfile.v1.models import HashModel, LockMeta
from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile

from envbuild import rattler_client
from envbuild._fs import atomic_write, staged_file
from envbuild.errors import ChannelError, LockError
from envbuild.project import Project, did_you_mean
from envbuild.recipe import Recipe, _display

log = logging.getLogger("envbuild")

# Bump when the meaning of the fingerprint's inputs changes (conda-lock's content_hash lacks one
# and silently mis-detects staleness across versions).
FINGERPRINT_SCHEMA = 1
FINGERPRINT_KEY = "envbuild_fingerprint"

# Virtual packages assumed for each target platform, so a lock does not depend on the machine
# that made it (conda's virtual packages: https://docs.conda.io/projects/conda/en/latest/user-guide/tasks/manage-virtual.html).
DEFAULT_VIRTUAL_PACKAGES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "linux-64": (("__unix", "0", "0"), ("__linux", "5.10", "0"), ("__glibc", "2.28", "0"),
                 ("__archspec", "1", "x86_64")),
    "linux-aarch64": (("__unix", "0", "0"), ("__linux", "5.10", "0"), ("__glibc", "2.28", "0"),
                      ("__archspec", "1", "aarch64")),
    "osx-64": (("__unix", "0", "0"), ("__osx", "11.0", "0"), ("__archspec", "1", "x86_64")),
    "osx-arm64": (("__unix", "0", "0"), ("__osx", "11.0", "0"), ("__archspec", "1", "arm64")),
    "win-64": (("__win", "0", "0"), ("__archspec", "1", "x86_64")),
}  # fmt: skip


def virtual_packages(platform: str) -> tuple[tuple[str, str, str], ...]:
    """(name, version, build) of the virtual packages assumed for ``platform``."""
    if platform in DEFAULT_VIRTUAL_PACKAGES:
        return DEFAULT_VIRTUAL_PACKAGES[platform]
    return (("__unix", "0", "0"),) if not platform.startswith("win") else (("__win", "0", "0"),)


def solve_inputs(recipe: Recipe, project: Project) -> dict[str, Any]:
    """Everything that changes a solve, normalised: channel URLs after mirrors, in priority
    order; platforms and match specs sorted (their order does not change a solve)."""
    import rattler

    return {
        "schema": FINGERPRINT_SCHEMA,
        "channels": [project.channel_url(c) for c in recipe.channels],
        "platforms": sorted(recipe.platforms),
        "dependencies": sorted(str(rattler.MatchSpec(s)) for s in recipe.dependencies),
        "virtual_packages": {
            p: [list(v) for v in virtual_packages(p)] for p in sorted(recipe.platforms)
        },
    }


def fingerprint(recipe: Recipe, project: Project) -> str:
    """sha256 (hex, 64 chars) of the canonical JSON of :func:`solve_inputs`."""
    canonical = json.dumps(solve_inputs(recipe, project), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def solve_request(recipe: Recipe, project: Project, platform: str) -> dict[str, Any]:
    """The py-rattler worker request to solve ``recipe`` for ``platform``."""
    return {
        "channels": [project.channel_url(c) for c in recipe.channels],
        "specs": list(recipe.dependencies),
        "platform": platform,
        "virtual_packages": [list(v) for v in virtual_packages(platform)],
        "cache_dir": str(project.path("repodata_cache")),
    }


_NO_CANDIDATES = re.compile(
    r"no candidates were found for ([A-Za-z0-9_.\-]+)([^.\n]*)", re.IGNORECASE
)


def _solve_error(
    recipe: Recipe, project: Project, platform: str, e: rattler_client.RattlerCallError
) -> Exception:
    where = f"{_display(recipe.path)}: cannot lock for {platform}"
    f = e.failure
    if f.type in ("GatewayError", "FetchRepoDataError", "IoError", "InvalidChannelError"):
        culprits = [c for c in recipe.channels if project.channel_url(c) in f.message] or list(
            recipe.channels
        )
        hints = "\n".join(project.mirror_hint(c) for c in culprits)
        chans = ", ".join(f"'{c}' ({project.channel_url(c)})" for c in culprits)
        return ChannelError(
            f"{where}: channel {chans} is not reachable:\n  {f.message.strip()}\n{hints}"
        )
    if f.type == "SolverError":
        lines = [where]
        for missing, spec_text in dict.fromkeys(_NO_CANDIDATES.findall(f.message)):
            spec = next((s for s in recipe.dependencies if s.split()[0] == missing), None)
            key = f"dependencies: '{spec}'" if spec else f"'{missing}' (needed by another package)"
            chans = ", ".join(recipe.channels)
            if missing in f.names:
                lines.append(
                    f"  {key}: no build of '{missing}' on channel(s) {chans} for "
                    f"{platform} matches '{spec_text.strip()}'"
                )
            else:
                lines.append(
                    f"  {key}: no package named '{missing}' on channel(s) {chans} for "
                    f"{platform}{did_you_mean(missing, f.names)}"
                )
        lines.append("  solver explanation:")
        lines.extend("    " + ln for ln in f.message.strip().splitlines())
        return LockError("\n".join(lines))
    return LockError(f"{where}: {f.type}: {f.message}")


def solve(recipe: Recipe, project: Project) -> dict[str, list[dict[str, Any]]]:
    """Solve ``recipe`` for each of its platforms with py-rattler (strict channel priority).

    Output: platform -> list of repodata records (JSON dicts with name, version, build, url,
    md5, sha256, depends, ...). Raises ChannelError for an unreachable channel (naming it and
    how to mirror it) and LockError for an unsatisfiable or unknown spec.
    """
    result: dict[str, list[dict[str, Any]]] = {}
    for platform in recipe.platforms:
        try:
            result[platform] = rattler_client.call(
                "solve", solve_request(recipe, project, platform)
            )
        except rattler_client.RattlerCallError as e:
            raise _solve_error(recipe, project, platform, e) from None
    return result


def _dependencies(depends: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for dep in depends:
        name, _, rest = dep.strip().partition(" ")
        out[name] = rest.strip().split(" ")[0] if rest.strip() else ""
    return out


def to_lockfile(
    recipe: Recipe, project: Project, records: dict[str, list[dict[str, Any]]], lock_path: Path
) -> Lockfile:
    """Build conda-lock's Lockfile model from solved records (pure).

    Each package carries url, md5 and sha256; the recipe fingerprint is recorded in
    ``metadata.custom_metadata`` and per platform in ``metadata.content_hash``.
    """
    fp = fingerprint(recipe, project)
    packages = [
        LockedDependency(
            name=r["name"],
            version=r["version"],
            manager="conda",
            platform=platform,
            dependencies=_dependencies(r.get("depends", [])),
            url=r["url"],
            hash=HashModel(md5=r["md5"], sha256=r["sha256"]),
            build=r["build"],
            categories={"main"},
        )
        for platform, recs in records.items()
        for r in recs
    ]
    meta = LockMeta(
        content_hash={p: hashlib.sha256(f"{fp}:{p}".encode()).hexdigest() for p in records},
        channels=[project.channel_url(c) for c in recipe.channels],
        platforms=sorted(records),
        sources=[os.path.relpath(recipe.path.resolve(), lock_path.parent.resolve())],
        custom_metadata={FINGERPRINT_KEY: fp, "envbuild_schema": str(FINGERPRINT_SCHEMA)},
    )
    return Lockfile(package=packages, metadata=meta)


def write_lockfile(lockfile: Lockfile, path: Path) -> None:
    """Write ``lockfile`` to ``path`` with conda-lock's writer, atomically."""
    with staged_file(path) as tmp:
        write_conda_lock_file(lockfile, tmp, metadata_choices=())
        # the writer names its own file in the help text; name the real one
        text = tmp.read_text().replace(tmp.name, path.name)
        atomic_write(tmp, text)


def read_lockfile(path: Path) -> Lockfile:
    """Parse ``path`` with conda-lock's parser. Raises LockError if missing or invalid."""
    try:
        return parse_conda_lock_file(path)
    except FileNotFoundError:
        msg = f"{_display(path)}: no lockfile; run `doit lock` first"
        raise LockError(msg) from None
    except Exception as e:
        msg = (
            f"{_display(path)}: not a valid conda-lock file ({type(e).__name__}: {e}); "
            "delete it and run `doit lock`"
        )
        raise LockError(msg) from None


def locked_fingerprint(path: Path) -> str | None:
    """The fingerprint recorded in lockfile ``path``, or None if absent/unreadable. No solve."""
    try:
        meta = read_lockfile(path).metadata.custom_metadata or {}
    except LockError:
        return None
    return meta.get(FINGERPRINT_KEY)


def lock_recipe(recipe: Recipe, project: Project) -> Path:
    """Solve ``recipe`` and write ``locks/<name>.conda-lock.yml``. Returns its path.

    Raises ChannelError/LockError (see :func:`solve`); an existing lockfile is untouched on
    failure.
    """
    path = project.lockfile(recipe.name)
    records = solve(recipe, project)
    write_lockfile(to_lockfile(recipe, project, records, path), path)
    n = sum(len(v) for v in records.values())
    log.info("locked %s: %d packages for %s", recipe.name, n, ", ".join(records))
    return path


def install_records(lockfile: Lockfile, platform: str) -> list[dict[str, Any]]:
    """The locked conda packages for ``platform`` as worker install records (explicit specs:
    url + md5 + sha256, no solving)."""
    out = []
    for p in lockfile.package:
        if p.manager != "conda" or p.platform != platform:
            continue
        fn = p.url.rsplit("/", 1)[-1]
        subdir = p.url.rsplit("/", 2)[-2]
        out.append(
            {
                "name": p.name,
                "version": p.version,
                "build": p.build or "",
                "subdir": subdir,
                "depends": [f"{k} {v}".strip() for k, v in p.dependencies.items()],
                "md5": p.hash.md5,
                "sha256": p.hash.sha256,
                "fn": fn,
                "url": p.url,
                "channel": p.url.rsplit("/", 2)[0],
            }
        )
    if not out:
        msg = f"the lockfile has no packages for platform {platform}"
        raise LockError(msg)
    return out
