"""The nightly rebuild: recreate every environment from a fresh solve, promote only what
passes, and roll back on demand.

Per recipe: (1) a fresh solve gives a candidate lock (the current lock never constrains it) and
its diff; (2) a brand-new environment is built from it in its own build directory; (3) smoke
checks and verification against the candidate lock; (4) only if all pass, promotion: the
environment's stable path switches in one atomic step, then the lockfile follows, then pack and
image. A journal (``build/state/<name>.promotion.json``) makes the switch-then-lockfile pair
complete after a kill -9: the next nightly or rollback finishes a promotion whose switch
happened. On any failure before promotion the current environment, lock, tarball and image
stay as they were.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envbuild import build as build_mod
from envbuild import lock as lock_mod
from envbuild import lockdiff, stages
from envbuild.errors import BuildError, EnvBuildError
from envbuild.fingerprint import effective_cutoff
from envbuild.fs import atomic_link, atomic_write, remove_tree, tree_bytes
from envbuild.project import Project
from envbuild.recipe_model import Recipe, current_subdir
from envbuild.smoke import run_checks
from envbuild.state import build_is_current
from envbuild.verify import verify_prefix

if TYPE_CHECKING:
    from conda_lock.lockfile.v2prelim.models import Lockfile


@dataclass(frozen=True, slots=True)
class NightlyResult:
    """One environment's nightly outcome. ``status``: promoted, proposed (``[nightly] mode =
    "propose"``: the candidate passed and its lock and diff are in reports/, nothing switched),
    unchanged (the fresh solve gave the packages already locked and built: nothing built,
    promoted, packed or imaged) or failed; ``stage``: where it failed. Sizes in bytes, times
    in seconds."""

    recipe: str
    status: str
    stage: str = ""
    error: str = ""
    build_id: str = ""
    changes: list[dict[str, str]] = field(default_factory=list)
    smoke: list[dict[str, Any]] = field(default_factory=list)
    build_seconds: float = 0.0
    env_bytes: int = 0
    tarball_bytes: int = 0
    image: str = ""
    seconds: float = 0.0
    exclude_newer: str = ""  # the cutoff this night solved with (UTC)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


log = logging.getLogger("envbuild")


def journal_path(project: Project, name: str) -> Path:
    return project.path("state") / f"{name}.promotion.json"


def finish_interrupted_promotion(project: Project, name: str) -> None:
    """If a promotion switched the environment but was killed before its lockfile followed,
    finish it; if it was killed before the switch, forget it."""
    journal = journal_path(project, name)
    try:
        entry = json.loads(journal.read_text())
    except (OSError, ValueError):
        return
    info = build_mod.read_marker(project.env_prefix(name))
    if info is not None and info.build_id == entry.get("build_id"):
        copy = build_mod.lock_copy(project.env_prefix(name))
        atomic_write(project.lockfile(name), copy.read_bytes())
        stages.record_build_state(project, name)
        log.info("finished the interrupted promotion of %s build %s", name, info.build_id)
    remove_tree(journal)


def switch_to(project: Project, name: str, prefix: Path) -> None:
    """Make ``prefix`` (a complete build) current, then its lockfile: journal, atomic symlink
    switch, lockfile + explicit files, state files, journal removed."""
    info = build_mod.read_marker(prefix)
    assert info is not None
    journal = journal_path(project, name)
    atomic_write(journal, json.dumps({"build_id": info.build_id}))
    build_mod.promote(project, name, info.build_id)
    atomic_write(project.lockfile(name), build_mod.lock_copy(prefix).read_bytes())
    stages.record_build_state(project, name)
    remove_tree(journal)


def _packages(lockfile: Lockfile) -> set[tuple[str, ...]]:
    return {
        (p.platform, p.manager, p.name, p.version, p.build or "", p.url, p.hash.sha256 or "")
        for p in lockfile.package
    }


def _unchanged(project: Project, name: str, current: Lockfile | None, candidate: Lockfile) -> bool:
    """True if the fresh solve locks exactly the packages (url and sha256, every platform) of
    the current lock, for the same recipe inputs, and the current build is of that lock: then
    a new build would only churn (a new build id, a rollback target equal to the current one,
    a new image)."""
    if current is None or _packages(current) != _packages(candidate):
        return False
    fingerprints = [
        (lf.metadata.custom_metadata or {}).get(lock_mod.FINGERPRINT_KEY)
        for lf in (current, candidate)
    ]
    return fingerprints[0] == fingerprints[1] and build_is_current(project.root, name)


def _fail(result: dict[str, Any], stage: str, error: str, start: float) -> NightlyResult:
    log.error("nightly %s: %s failed: %s", result["recipe"], stage, error.splitlines()[0])
    return NightlyResult(
        **result,
        status="failed",
        stage=stage,
        error=error,
        seconds=round(time.monotonic() - start, 2),
    )


def nightly_recipe(recipe: Recipe, project: Project) -> NightlyResult:
    """Run the nightly steps for one recipe (see the module docstring). Never raises an
    EnvBuildError: failures are in the result."""
    start = time.monotonic()
    name = recipe.name
    res: dict[str, Any] = {"recipe": name}
    with build_mod.build_mutex(project, name):
        finish_interrupted_promotion(project, name)
        current_path = project.lockfile(name)
        current = lock_mod.read_lockfile(current_path) if current_path.exists() else None
        candidate_path = project.path("state") / "nightly" / f"{name}.conda-lock.yml"
        # a night solves as of its start unless the recipe or project sets exclude-newer; the
        # cutoff is recorded (lock metadata, report), so that night can be solved again
        # (now, rounded up to a whole second: what was published before the night started)
        res["exclude_newer"] = effective_cutoff(recipe, project) or time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(time.time()))
        )
        try:
            candidate = lock_mod.plan_lock(recipe, project, cutoff=res["exclude_newer"])
            lock_mod.write_lockfile(candidate, candidate_path)
        except EnvBuildError as e:
            return _fail(res, "lock", str(e), start)
        res["changes"] = [asdict(c) for c in lockdiff.diff(current, candidate)]
        if _unchanged(project, name, current, candidate):
            seconds = round(time.monotonic() - start, 2)
            log.info("nightly %s: unchanged (checked in %.1f s)", name, seconds)
            return NightlyResult(**res, status="unchanged", seconds=seconds)
        try:
            prefix, info = build_mod.install_build(recipe, project, candidate_path)
        except EnvBuildError as e:
            return _fail(res, "build", str(e), start)
        res.update(build_id=info.build_id, build_seconds=info.seconds)
        checks = run_checks(recipe.smoke, prefix)
        res["smoke"] = [asdict(c) for c in checks]
        if not all(c.ok for c in checks):
            bad = [
                f"{c.kind} {c.target}: exit {c.returncode}: {c.stderr.strip()[-300:]}"
                for c in checks
                if not c.ok
            ]
            build_mod.remove_build(prefix)
            return _fail(res, "smoke", "\n".join(bad), start)
        findings = verify_prefix(prefix, candidate, current_subdir(), info.prefix)
        if findings:
            build_mod.remove_build(prefix)
            return _fail(
                res, "verify", "\n".join(f"{f.kind} {f.package} {f.path}" for f in findings), start
            )
        if project.nightly_mode == "propose":
            return _propose(project, name, prefix, current, candidate, res, start)
        switch_to(project, name, prefix)
        lock_mod.write_explicit(candidate, project, name)
        lockdiff.write_reports(project.path("reports"), name, lockdiff.diff(current, candidate))
    res["env_bytes"] = tree_bytes(prefix)
    stages.record_smoke_state(project, name, info.build_id, checks)
    for stage, step in (("pack", stages.pack), ("docker", stages.docker)):
        try:
            step(str(project.root), name)
        except EnvBuildError as e:
            return _fail(res, stage, str(e), start)
    res["tarball_bytes"] = stages.tarball(project, name).stat().st_size
    image = stages.read_json(project.path("state") / f"{name}.image.json") or {}
    res["image"] = image.get("tag", "") if image.get("build_id") == info.build_id else ""
    return NightlyResult(**res, status="promoted", seconds=round(time.monotonic() - start, 2))


def proposed_lockfile(project: Project, name: str) -> Path:
    return project.path("reports") / f"{name}.proposed.conda-lock.yml"


def _propose(
    project: Project,
    name: str,
    prefix: Path,
    current: Lockfile | None,
    candidate: Lockfile,
    res: dict[str, Any],
    start: float,
) -> NightlyResult:
    """The candidate passed: write its lock and the diff to reports/ (what a pull request
    carries) and drop its build; the current environment, lock, tarball and image stay."""
    lock_mod.write_lockfile(candidate, proposed_lockfile(project, name))
    lockdiff.write_reports(project.path("reports"), name, lockdiff.diff(current, candidate))
    res["env_bytes"] = tree_bytes(prefix)
    build_mod.remove_build(prefix)
    log.info("nightly %s: proposed %s", name, proposed_lockfile(project, name))
    return NightlyResult(**res, status="proposed", seconds=round(time.monotonic() - start, 2))


def rollback(project: Project, name: str) -> str:
    """Make the newest build older than the current one current again, with its lockfile, its
    explicit files and (if kept) its tarball. Returns its build id. Raises BuildError if there
    is none."""
    with build_mod.build_mutex(project, name):
        finish_interrupted_promotion(project, name)
        current = build_mod.read_marker(project.env_prefix(name))
        older = [
            d
            for d in build_mod.complete_builds(project, name)
            if current is None or d.name < current.build_id
        ]
        if not older:
            msg = f"environment '{name}' has no earlier build to roll back to"
            raise BuildError(msg)
        target = older[-1]
        switch_to(project, name, target)
        lock_mod.write_explicit(lock_mod.read_lockfile(project.lockfile(name)), project, name)
        kept = stages.history_tarball(project, name, target.name)
        if kept.exists():
            atomic_link(kept, stages.tarball(project, name))
        log.info("rolled %s back to build %s", name, target.name)
        return target.name


def write_report(project: Project, results: list[NightlyResult]) -> tuple[Path, Path]:
    """reports/nightly.md (people) and reports/nightly.json (machines)."""
    rows = [
        "# Nightly rebuild",
        "",
        "| recipe | status | lock changes | smoke | build s | env MB | tarball MB | image | s "
        "| solved as of |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        kinds = lockdiff.summary([lockdiff.Change(**c) for c in r.changes])
        smoke = f"{sum(c['returncode'] == 0 for c in r.smoke)}/{len(r.smoke)}"
        status = r.status if r.status != "failed" else f"FAILED at {r.stage}"
        rows.append(
            f"| {r.recipe} | {status} | {kinds} | {smoke} | {r.build_seconds:.1f} | "
            f"{r.env_bytes / 1e6:.1f} | {r.tarball_bytes / 1e6:.1f} | {r.image or '-'} | "
            f"{r.seconds:.1f} | {r.exclude_newer or '-'} |"
        )
    for r in results:
        if r.status == "failed":
            rows += ["", f"## {r.recipe}: failed at {r.stage}", "", "```", r.error, "```"]
        if r.changes and r.status != "unchanged":
            rows += ["", lockdiff.to_markdown(r.recipe, [lockdiff.Change(**c) for c in r.changes])]
    md = project.path("reports") / "nightly.md"
    js = project.path("reports") / "nightly.json"
    atomic_write(md, "\n".join(rows) + "\n")
    atomic_write(js, json.dumps([asdict(r) for r in results], indent=2))
    return md, js
