"""The scheduled workflow's merge step: per-platform build results in, one lockfile per recipe
and one pull-request body out.

The workflow (``templates/schedule/github-nightly.yml.j2``) locks every platform of every recipe
in one job (``doit relock``) and uploads ``locks/`` and the diff reports as the artifact
``envbuild-locks``. Native runners then build, smoke-test and pack each recipe for each platform
envbuild can build on (:data:`BUILDABLE`) from that lock, each uploading
``envbuild-result-<recipe>-<platform>/`` holding ``result.json`` (:class:`PlatformResult`) and
the lockfile and explicit file it built from. :func:`merge` is a gate: artifact names are
parsed (never globbed), one result per recipe and platform, files read with size limits and
never through symlinks. It accepts a recipe's new lock only if every buildable platform passed
with that same lockfile and explicit file (same sha256; never "the last runner wins"), writes
the accepted lockfiles and explicit files into ``locks/`` all together (staged, journaled),
and writes the body: a table of every recipe and
platform, the unsupported platforms, and the diff of each accepted lock. Artifact layout:
https://github.com/actions/download-artifact (one directory per artifact).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from envbuild.errors import EnvBuildError
from envbuild.install.build import build_mutex
from envbuild.ops.artifacts import FILE_LIMIT, read_json_object, read_regular, sha256
from envbuild.project import Project
from envbuild.recipe.model import Recipe
from envbuild.recipe.validate import display
from envbuild.util.fs import atomic_write, file_sha256, remove_tree

# conda platforms envbuild builds and tests on; others (win-64) are locked but not built
BUILDABLE = ("linux-64", "linux-aarch64", "osx-64", "osx-arm64")
LOCKS_ARTIFACT = "envbuild-locks"
RESULT_PREFIX = "envbuild-result-"
# <recipe>-<platform>: the platform is the last two dash-separated words, a conda subdir
_RESULT_NAME = re.compile(
    r"(?P<recipe>[A-Za-z0-9][A-Za-z0-9._-]*)-(?P<platform>(?:linux|osx|win|emscripten|wasi|"
    r"zos|freebsd)-[a-z0-9]+)"
)
STAGING = ".ci-merge"  # inside locks/: staged files, then the manifest (the journal)
MANIFEST = "manifest.json"
REPORT_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PlatformResult:
    """One build job's outcome: ``status`` is the job status (``success``, ``failure``,
    ``cancelled``); ``lock_sha256`` the sha256 of the lockfile it built from,
    ``explicit_sha256`` that of the explicit file of its platform (both carried in its
    artifact; "" from a record step older than that: the file must still be there and be
    the new lock's)."""

    recipe: str
    platform: str
    status: str
    lock_sha256: str
    explicit_sha256: str = ""


@dataclass(frozen=True, slots=True)
class Merged:
    """What :func:`merge` did: recipe -> "accepted" / "rejected: <why>" / "unchanged"."""

    outcome: dict[str, str]
    body: Path


def explicit_name(recipe: str, platform: str) -> str:
    return f"{recipe}-{platform}.explicit.txt"


def record(recipe: str, platform: str, status: str, out: Path, locks: Path) -> PlatformResult:
    """A build job's result: copy ``<locks>/<recipe>.conda-lock.yml`` (the lockfile it built
    from) to ``<out>/lock.conda-lock.yml`` and the explicit file of ``platform`` beside it,
    and write ``<out>/result.json`` with their sha256."""
    out.mkdir(parents=True, exist_ok=True)
    lock = read_regular(locks / f"{recipe}.conda-lock.yml")
    atomic_write(out / "lock.conda-lock.yml", lock)
    explicit = locks / explicit_name(recipe, platform)
    explicit_sha = ""
    if explicit.exists():
        data = read_regular(explicit)
        atomic_write(out / explicit.name, data)
        explicit_sha = sha256(data)
    result = PlatformResult(recipe, platform, status, sha256(lock), explicit_sha)
    atomic_write(out / "result.json", json.dumps(asdict(result), indent=2))
    return result


def _parse_result(path: Path) -> PlatformResult:
    data = read_json_object(path)
    names = {f.name for f in fields(PlatformResult)}
    required = names - {"explicit_sha256"}
    if not required <= set(data) <= names or not all(isinstance(v, str) for v in data.values()):
        msg = (
            f"{display(path)}: not a build result (keys {', '.join(sorted(names))}, all "
            "strings); rerun the workflow's build job"
        )
        raise EnvBuildError(msg)
    return PlatformResult(**data)


def read_results(artifacts: Path) -> tuple[dict[tuple[str, str], PlatformResult], dict[str, str]]:
    """The results in ``<artifacts>/envbuild-result-<recipe>-<platform>/result.json``, by
    (recipe, platform) parsed from the directory's name, and recipe -> why its results
    cannot be trusted (a result that is not one, claims another recipe or platform than its
    artifact's name, or a second result for one recipe and platform). Raises EnvBuildError
    for an artifact whose name is not a result's."""
    out: dict[tuple[str, str], PlatformResult] = {}
    bad: dict[str, str] = {}
    claims: dict[tuple[str, str], list[str]] = {}
    for entry in sorted(artifacts.iterdir()) if artifacts.is_dir() else []:
        if not entry.name.startswith(RESULT_PREFIX):
            continue
        m = _RESULT_NAME.fullmatch(entry.name.removeprefix(RESULT_PREFIX))
        if m is None or entry.is_symlink() or not entry.is_dir():
            msg = (
                f"{display(entry)}: not a build result artifact (a directory named "
                f"{RESULT_PREFIX}<recipe>-<platform>)"
            )
            raise EnvBuildError(msg)
        key = (m["recipe"], m["platform"])
        try:
            r = _parse_result(entry / "result.json")
        except EnvBuildError as e:
            bad.setdefault(key[0], str(e))
            continue
        claims.setdefault((r.recipe, r.platform), []).append(entry.name)
        if (r.recipe, r.platform) != key:
            why = f"{entry.name} claims to be {r.recipe} on {r.platform}"
            bad.setdefault(key[0], why)
            bad.setdefault(r.recipe, why)
            continue
        out[key] = r
    for (recipe, platform), where in claims.items():
        if len(where) > 1:
            bad.setdefault(recipe, f"{platform}: {len(where)} results ({', '.join(where)})")
    return out, bad


def _check_platform(
    name: str, platform: str, r: PlatformResult, lock_sha: str, artifacts: Path, locked: Path
) -> str:
    """Why the result ``r`` does not accept the new lock of ``name`` on ``platform``, or ""."""
    where = artifacts / f"{RESULT_PREFIX}{name}-{platform}"
    try:
        built_from = sha256(read_regular(where / "lock.conda-lock.yml"))
    except EnvBuildError as e:
        return f"{platform}: lockfile refused: {e}"
    if not r.lock_sha256 == built_from == lock_sha:
        return f"{platform}: built from another lockfile"
    if r.status != "success":
        return f"{platform}: {r.status}"
    try:
        explicit = sha256(read_regular(where / explicit_name(name, platform)))
        expected = sha256(read_regular(locked / explicit_name(name, platform)))
    except EnvBuildError as e:
        return f"{platform}: explicit file refused: {e}"
    if explicit != expected or r.explicit_sha256 not in ("", explicit):
        return f"{platform}: explicit file is not the new lock's"
    return ""


def _verdict(
    recipe: Recipe,
    lock_sha: str,
    results: dict[tuple[str, str], PlatformResult],
    artifacts: Path,
) -> tuple[list[str], list[str]]:
    """(problems, table rows) for one recipe's new lock: every buildable platform passed
    from that same lockfile, and carried it and its explicit file."""
    rows, problems = [], []
    locked = artifacts / LOCKS_ARTIFACT / "locks"
    for platform in recipe.platforms:
        if platform not in BUILDABLE:
            rows.append(f"| {recipe.name} | {platform} | locked; build unsupported |")
            continue
        r = results.get((recipe.name, platform))
        if r is None:
            problems.append(f"{platform}: no build result")
            rows.append(f"| {recipe.name} | {platform} | no result |")
            continue
        why = _check_platform(recipe.name, platform, r, lock_sha, artifacts, locked)
        if why:
            problems.append(why)
        shown = "other lockfile" if why.endswith("another lockfile") else r.status
        rows.append(f"| {recipe.name} | {platform} | {shown} |")
    return problems, rows


def _files_of(recipe: Recipe, locked: Path) -> dict[str, bytes]:
    """The accepted files of ``recipe`` (its lockfile and the explicit file of each of its
    platforms), read from the lock artifact; EnvBuildError if one is missing or refused."""
    names = [f"{recipe.name}.conda-lock.yml"]
    names += [explicit_name(recipe.name, p) for p in recipe.platforms]
    return {n: read_regular(locked / n) for n in names}


def finish_staged(locks: Path) -> bool:
    """Move the files of a staged merge whose manifest was written into ``locks/`` (roll
    forward), or drop a staging without one (it never started). Idempotent. Caller holds
    the build mutexes of the recipes concerned. True if there was a staging."""
    staging = locks / STAGING
    if not staging.is_dir():
        return False
    try:
        names = json.loads((staging / MANIFEST).read_text())
    except (OSError, ValueError):
        names = []  # no manifest: not at all
    for n in names if isinstance(names, list) else []:
        if isinstance(n, str) and "/" not in n and (staging / n).is_file():
            os.replace(staging / n, locks / n)
    remove_tree(staging)
    return True


def _commit(project: Project, writes: dict[str, dict[str, bytes]]) -> None:
    """Write every accepted file into ``locks/`` together: staged beside them, a manifest
    (the journal), then one rename each; under the build mutexes of the recipes concerned.
    A run killed before the manifest wrote nothing; after it, :func:`finish_staged`
    (the next ``doit ci_merge``) moves the rest."""
    locks = project.path("locks")
    with contextlib.ExitStack() as held:
        for name in sorted(writes):
            held.enter_context(build_mutex(project, name))
        finish_staged(locks)
        staging = locks / STAGING
        staging.mkdir(parents=True)
        files = {n: data for per in writes.values() for n, data in per.items()}
        for n, data in files.items():
            atomic_write(staging / n, data)
        atomic_write(staging / MANIFEST, json.dumps(sorted(files)))
        finish_staged(locks)


def merge(project: Project, recipes: list[Recipe], artifacts: Path) -> Merged:
    """Merge the downloaded ``artifacts`` directory into ``project``: accepted locks (with
    their explicit files) into ``locks/`` (all together, or none), the pull-request body
    into ``reports/nightly-pr.md``. Raises EnvBuildError if the lock job's artifact is
    missing or an artifact's name is not a result's (nothing written)."""
    locked = artifacts / LOCKS_ARTIFACT / "locks"
    if locked.is_symlink() or not locked.is_dir():
        msg = f"{display(locked)}: missing; the workflow's lock job did not finish"
        raise EnvBuildError(msg)
    with contextlib.ExitStack() as held:  # a merge a killed run staged is finished first
        for recipe in sorted(recipes, key=lambda r: r.name):
            held.enter_context(build_mutex(project, recipe.name))
        finish_staged(project.path("locks"))
    results, untrusted = read_results(artifacts)
    outcome: dict[str, str] = {}
    table = ["| recipe | platform | build |", "|---|---|---|"]
    diffs: list[str] = []
    writes: dict[str, dict[str, bytes]] = {}
    for recipe in recipes:
        new_path = locked / f"{recipe.name}.conda-lock.yml"
        current = project.lockfile(recipe.name)
        if not new_path.exists() and not new_path.is_symlink():
            outcome[recipe.name] = "unchanged"
            continue
        try:
            new = read_regular(new_path, FILE_LIMIT)
        except EnvBuildError as e:
            outcome[recipe.name] = f"rejected: {e}"
            continue
        if current.exists() and sha256(new) == file_sha256(current):
            outcome[recipe.name] = "unchanged"
            continue
        problems, rows = _verdict(recipe, sha256(new), results, artifacts)
        if recipe.name in untrusted:
            problems.insert(0, untrusted[recipe.name])
        table += rows
        if not problems:
            try:
                writes[recipe.name] = _files_of(recipe, locked)
            except EnvBuildError as e:
                problems.append(str(e))
        outcome[recipe.name] = "accepted" if not problems else "rejected: " + "; ".join(problems)
        report = artifacts / LOCKS_ARTIFACT / "reports" / f"{recipe.name}.lock-diff.md"
        if not problems and (report.exists() or report.is_symlink()):
            try:
                diffs.append(read_regular(report, REPORT_LIMIT).decode(errors="replace"))
            except EnvBuildError as e:
                diffs.append(f"(diff of {recipe.name} left out: {e})")
    if writes:
        _commit(project, writes)
    lines = ["Nightly relock by envbuild.", ""]
    lines += [f"- **{name}**: {what}" for name, what in outcome.items()]
    lines += ["", *table, "", *diffs]
    body = project.path("reports") / "nightly-pr.md"
    atomic_write(body, "\n".join(lines) + "\n")
    return Merged(outcome, body)


def main(argv: list[str] | None = None) -> int:
    """``python -m envbuild.ops.ci record --recipe R --platform P --status S --out DIR``: the
    workflow's "Record the result" step (run in the checkout, beside ``locks/``)."""
    parser = argparse.ArgumentParser(prog="python -m envbuild.ops.ci")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record one build job's result")
    for opt in ("recipe", "platform", "status", "out"):
        rec.add_argument(f"--{opt}", required=True)
    args = parser.parse_args(argv)
    r = record(args.recipe, args.platform, args.status, Path(args.out), Path("locks"))
    print(f"{r.recipe} on {r.platform}: {r.status} (lock sha256 {r.lock_sha256[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
