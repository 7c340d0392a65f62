"""The scheduled workflow's merge step: per-platform build results in, one lockfile per recipe
and one pull-request body out.

The workflow (``templates/schedule/github-nightly.yml.j2``) locks every platform of every recipe
in one job (``doit relock``) and uploads ``locks/`` and the diff reports as the artifact
``envbuild-locks``. Native runners then build, smoke-test and pack each recipe for each platform
envbuild can build on (:data:`BUILDABLE`) from that lock, each uploading
``envbuild-result-<recipe>-<platform>/`` holding ``result.json`` (:class:`PlatformResult`) and
the lockfile it built from. :func:`merge` accepts a recipe's new lock only if every buildable
platform passed with that same lockfile (same sha256; never "the last runner wins"), copies it
and its explicit files into ``locks/``, and writes the body: a table of every recipe and
platform, the unsupported platforms, and the diff of each accepted lock. Artifact layout:
https://github.com/actions/download-artifact (one directory per artifact).
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from envbuild.errors import EnvBuildError
from envbuild.fs import atomic_write, file_sha256
from envbuild.project import Project
from envbuild.recipe_model import Recipe
from envbuild.validate import display

# conda platforms envbuild builds and tests on; others (win-64) are locked but not built
BUILDABLE = ("linux-64", "linux-aarch64", "osx-64", "osx-arm64")
LOCKS_ARTIFACT = "envbuild-locks"
RESULT_PREFIX = "envbuild-result-"


@dataclass(frozen=True, slots=True)
class PlatformResult:
    """One build job's outcome: ``status`` is the job status (``success``, ``failure``,
    ``cancelled``); ``lock_sha256`` the sha256 of the lockfile it built from."""

    recipe: str
    platform: str
    status: str
    lock_sha256: str


@dataclass(frozen=True, slots=True)
class Merged:
    """What :func:`merge` did: recipe -> "accepted" / "rejected: <why>" / "unchanged"."""

    outcome: dict[str, str]
    body: Path


def record(recipe: str, platform: str, status: str, out: Path, locks: Path) -> PlatformResult:
    """A build job's result: copy ``<locks>/<recipe>.conda-lock.yml`` (the lockfile it built
    from) to ``<out>/lock.conda-lock.yml`` and write ``<out>/result.json``."""
    lock = out / "lock.conda-lock.yml"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(locks / f"{recipe}.conda-lock.yml", lock)
    result = PlatformResult(recipe, platform, status, file_sha256(lock))
    atomic_write(out / "result.json", json.dumps(asdict(result), indent=2))
    return result


def read_results(artifacts: Path) -> list[PlatformResult]:
    """Every ``<artifacts>/envbuild-result-*/result.json``. Raises EnvBuildError naming a
    file that is not a result."""
    out = []
    for path in sorted(artifacts.glob(f"{RESULT_PREFIX}*/result.json")):
        try:
            out.append(PlatformResult(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError) as e:
            msg = f"{display(path)}: not a build result ({e}); rerun the workflow's build job"
            raise EnvBuildError(msg) from None
    return out


def _verdict(
    recipe: Recipe, lock_sha: str, results: list[PlatformResult], artifacts: Path
) -> tuple[str, list[str]]:
    """("accepted" or "rejected: why", table rows) for one recipe's new lock."""
    rows, problems = [], []
    for platform in recipe.platforms:
        if platform not in BUILDABLE:
            rows.append(f"| {recipe.name} | {platform} | locked; build unsupported |")
            continue
        mine = [r for r in results if r.recipe == recipe.name and r.platform == platform]
        if not mine:
            problems.append(f"{platform}: no build result")
            rows.append(f"| {recipe.name} | {platform} | no result |")
            continue
        r = mine[0]
        built_from = artifacts / f"{RESULT_PREFIX}{recipe.name}-{platform}" / "lock.conda-lock.yml"
        same = r.lock_sha256 == lock_sha and (
            not built_from.exists() or file_sha256(built_from) == lock_sha
        )
        if not same:
            problems.append(f"{platform}: built from another lockfile")
        elif r.status != "success":
            problems.append(f"{platform}: {r.status}")
        rows.append(f"| {recipe.name} | {platform} | {r.status if same else 'other lockfile'} |")
    return ("accepted" if not problems else "rejected: " + "; ".join(problems)), rows


def merge(project: Project, recipes: list[Recipe], artifacts: Path) -> Merged:
    """Merge the downloaded ``artifacts`` directory into ``project``: accepted locks (with
    their explicit files) into ``locks/``, the pull-request body into ``reports/nightly-pr.md``.
    Raises EnvBuildError if the lock job's artifact is missing."""
    locked = artifacts / LOCKS_ARTIFACT
    if not (locked / "locks").is_dir():
        msg = f"{display(locked / 'locks')}: missing; the workflow's lock job did not finish"
        raise EnvBuildError(msg)
    results = read_results(artifacts)
    outcome: dict[str, str] = {}
    table = ["| recipe | platform | build |", "|---|---|---|"]
    diffs: list[str] = []
    for recipe in recipes:
        new = locked / "locks" / project.lockfile(recipe.name).name
        current = project.lockfile(recipe.name)
        if not new.exists() or (current.exists() and file_sha256(new) == file_sha256(current)):
            outcome[recipe.name] = "unchanged"
            continue
        verdict, rows = _verdict(recipe, file_sha256(new), results, artifacts)
        outcome[recipe.name] = verdict
        table += rows
        if verdict == "accepted":
            for f in (new, *sorted((locked / "locks").glob(f"{recipe.name}-*.explicit.txt"))):
                shutil.copyfile(f, project.path("locks") / f.name)
            report = locked / "reports" / f"{recipe.name}.lock-diff.md"
            if report.exists():
                diffs.append(report.read_text())
    lines = ["Nightly relock by envbuild.", ""]
    lines += [f"- **{name}**: {what}" for name, what in outcome.items()]
    lines += ["", *table, "", *diffs]
    body = project.path("reports") / "nightly-pr.md"
    atomic_write(body, "\n".join(lines) + "\n")
    return Merged(outcome, body)


def main(argv: list[str] | None = None) -> int:
    """``python -m envbuild.ci record --recipe R --platform P --status S --out DIR``: the
    workflow's "Record the result" step (run in the checkout, beside ``locks/``)."""
    parser = argparse.ArgumentParser(prog="python -m envbuild.ci")
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
