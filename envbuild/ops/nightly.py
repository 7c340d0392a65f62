"""The nightly rebuild: recreate every environment from a fresh solve and promote only a
candidate that passed everything.

Per recipe, under the environment's build mutex: (1) a fresh solve gives a candidate lock (the
current lock never constrains it) and its diff; the same packages as the current lock and build
mean "unchanged": nothing is built; (2) a brand-new environment is built from it in its own
build directory; (3) smoke checks and verification against the candidate lock; (4) it is packed
(with the tarball's proof) into its kept tarball and imaged (with the in-container smoke
checks) under its lock's tag only; with ``[publish]``, its image, tarball and SBOM are pushed by
digest, no tag moved; (5) only then :mod:`envbuild.ops.promotion` switches environment,
lockfile, explicit files, tarball, image tag and the registry's ``:current`` together,
journaled. A failure at any step discards the candidate and leaves all six as they were.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envbuild.deliver import release
from envbuild.errors import EnvBuildError
from envbuild.install import build as build_mod
from envbuild.layout import build_record, pack_record
from envbuild.lock import diff as lockdiff
from envbuild.lock import solve as lock_mod
from envbuild.lock.epoch import lock_epoch
from envbuild.ops import promotion
from envbuild.prefix.verify import verify_prefix
from envbuild.project import Project
from envbuild.recipe.fingerprint import effective_cutoff
from envbuild.recipe.model import Recipe, current_subdir
from envbuild.records import BuildInfo, ImageRecord, NightlyResult, PackRecord
from envbuild.ship import engine as image_mod
from envbuild.ship import pack as pack_mod
from envbuild.ship.sbom import SBOM_IN_PREFIX, write_sbom
from envbuild.ship.smoke import run_checks
from envbuild.ship.smoke import write_report as write_smoke_report
from envbuild.stages import inputs as stage_inputs
from envbuild.stages.build import build_is_current
from envbuild.stages.docker import docker_digest, engine_available
from envbuild.util import kill_points
from envbuild.util.fs import atomic_write, tree_bytes

if TYPE_CHECKING:
    from conda_lock.lockfile.v2prelim.models import Lockfile


log = logging.getLogger("envbuild")


def night_cutoff(recipe: Recipe, project: Project, now: float | None = None) -> str:
    """The cutoff a nightly solve uses: the recipe's or project's ``exclude-newer``, else
    ``now`` (seconds since the Unix epoch; default the current time) rounded up to a whole
    second (UTC ``YYYY-MM-DDTHH:MM:SSZ``: what was published before the night started), so
    two nights within one second share a cutoff. Recorded in the lock, so that night can be
    solved again."""
    now = time.time() if now is None else now
    return effective_cutoff(recipe, project) or time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(now))
    )


def same_packages(current: Lockfile | None, candidate: Lockfile) -> bool:
    """True if both lock exactly the same packages (url and sha256, every platform) for the
    same recipe inputs (fingerprint)."""
    if current is None or _packages(current) != _packages(candidate):
        return False
    fingerprints = [
        (lf.metadata.custom_metadata or {}).get(lock_mod.FINGERPRINT_KEY)
        for lf in (current, candidate)
    ]
    return fingerprints[0] == fingerprints[1]


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
    return same_packages(current, candidate) and build_is_current(project.root, name)


def _fail(result: dict[str, Any], stage: str, error: str, start: float) -> NightlyResult:
    log.error("nightly %s: %s failed: %s", result["recipe"], stage, error.splitlines()[0])
    return NightlyResult(
        **result,
        status="failed",
        stage=stage,
        error=error,
        seconds=round(time.monotonic() - start, 2),
    )


def _smoke_and_verify(
    recipe: Recipe,
    project: Project,
    prefix: Path,
    info: BuildInfo,
    candidate: Lockfile,
    res: dict[str, Any],
) -> tuple[str, str]:
    """(stage, error) of the first failing host check of the candidate, or ("", "")."""
    checks = run_checks(recipe.smoke, prefix, variables=recipe.variables)
    res["smoke"] = [asdict(c) for c in checks]
    bad = [
        f"{c.kind} {c.target}: exit {c.returncode}: {c.stderr.strip()[-300:]}"
        for c in checks
        if not c.ok
    ]
    if bad:
        return "smoke", "\n".join(bad)
    stamp = stage_inputs.stamp(project, recipe, "smoke")
    write_smoke_report(build_record(project, recipe.name, info.build_id, "smoke"),
                       recipe.name, info.build_id, checks, stamp)  # fmt: skip
    findings = verify_prefix(prefix, candidate, current_subdir(), info.prefix)
    if findings:
        return "verify", "\n".join(f"{f.kind} {f.package} {f.path}" for f in findings)
    return "", ""


def _publishables(
    recipe: Recipe, project: Project, prefix: Path, info: BuildInfo, lockfile: Path
) -> tuple[str, str, promotion.Switch | None]:
    """Pack the candidate into its kept tarball (with the proof and its SBOM); write its
    image archive (``[image] base``) and, when an engine is reachable, load or build its image
    under its lock's tag and smoke-test it inside. The tarball's members carry
    ``lockfile``'s epoch, as `doit pack` of that lock gives them. Returns
    (stage, error, None) on failure, else ("", "", the switch that publishes them)."""
    name, root = recipe.name, project.root
    fmt = recipe.pack.format
    kept = pack_mod.history_path(project.path("dist"), name, info.build_id, fmt)
    try:
        epoch = lock_epoch(lockfile)
        _sbom_file, sbom = write_sbom(project, name, info, prefix, current=False)
        extra = ((SBOM_IN_PREFIX, sbom.encode()),)
        tarball = pack_mod.pack_env(name, prefix, kept, recipe.pack, recipe.smoke,
                                    recipe.variables, epoch, extra)  # fmt: skip
    except (EnvBuildError, OSError) as e:  # OSError: e.g. ENOSPC in dist/
        return "pack", _reason(e), None
    stamp = stage_inputs.stamp(project, recipe, "pack")
    PackRecord(format=fmt, unpacked_size=tarball.unpacked_size, inputs=stamp.inputs,
               sources=stamp.sources).save(pack_record(project, name, info.build_id))  # fmt: skip
    image = ""
    try:
        context = promotion.stage_context(project, recipe, info.build_id, info.lock_sha256, kept)
        if project.image_base:  # the written image, kept with the candidate, checked inside
            from envbuild.deliver.registry_base import ensure_base
            from envbuild.ship import oci_stage

            ensure_base(project)
            image = oci_stage.write(project, recipe, info, prefix=prefix, current=False).tag
        elif engine_available():
            img = image_mod.build(context, name, info.lock_sha256, info.build_id,
                                  image_mod.project_id(root), current=False)  # fmt: skip
            image_mod.smoke(img.tag, recipe.smoke)
            record = ImageRecord(tag=img.tag, id=img.id, size=img.size, build_id=info.build_id,
                                 inputs=docker_digest(recipe))  # fmt: skip
            record.save(build_record(project, name, info.build_id, "image"))
            image = img.tag
    except (EnvBuildError, OSError) as e:
        return "docker", _reason(e), None
    pushed = ""
    if project.publish_registry:  # by digest, no tag: the switch moves :current
        try:
            pushed = release.push_build(project, name, info.build_id, recipe.smoke.imports)
        except (EnvBuildError, OSError) as e:
            return "publish", _reason(e), None
        kill_points.reached("pushed")
    dist = pack_mod.tarball_path(project.path("dist"), name, info.platform, fmt)
    return (
        "",
        "",
        promotion.Switch(
            name=name,
            build_id=info.build_id,
            dist_tarball=os.path.relpath(dist, root),
            tarball=os.path.relpath(kept, root),
            context=os.path.relpath(context, root),
            image=image,
            registry=project.publish_registry if pushed else "",
            registry_image=pushed,
        ),
    )


def nightly_recipe(recipe: Recipe, project: Project) -> NightlyResult:
    """Run the nightly steps for one recipe (see the module docstring). Never raises an
    EnvBuildError: failures are in the result."""
    start = time.monotonic()
    name = recipe.name
    res: dict[str, Any] = {"recipe": name}
    with build_mod.build_mutex(project, name):
        try:
            promotion.recover(project, name)
        except EnvBuildError as e:  # an interrupted switch that cannot finish yet
            return _fail(res, "recover", str(e), start)
        current_path = project.lockfile(name)
        current = lock_mod.read_lockfile(current_path) if current_path.exists() else None
        candidate_path = project.path("state") / "nightly" / f"{name}.conda-lock.yml"
        res["exclude_newer"] = night_cutoff(recipe, project)
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
        if project.publish_registry and not project.image_base:  # said before building
            msg = (
                f"[publish] registry = {project.publish_registry!r} needs the candidate's image "
                'as an archive: set [image] base = "..." in envbuild.toml (the image is then '
                "written without an engine), or remove [publish]; nothing was built"
            )
            return _fail(res, "publish", msg, start)
        try:
            prefix, info = build_mod.install_build(recipe, project, candidate_path)
        except (EnvBuildError, OSError) as e:  # OSError: a full disk, said as a failure
            return _fail(res, "build", _reason(e), start)
        kill_points.reached("built")
        res.update(build_id=info.build_id, build_seconds=info.seconds)
        stage, switch = "smoke", None
        try:
            stage, error = _smoke_and_verify(recipe, project, prefix, info, candidate, res)
            if not stage:
                res["env_bytes"] = tree_bytes(prefix)
                if project.nightly_mode == "propose":
                    return _propose(project, name, current, candidate, res, start)
                stage, error, switch = _publishables(recipe, project, prefix, info, candidate_path)
        except OSError as e:  # ENOSPC and the like, in whichever step: the candidate goes
            stage, error, switch = stage or "publish", _reason(e), None
        if stage or switch is None:
            promotion.discard_candidate(project, name)
            return _fail(res, stage, error, start)
        try:
            promotion.apply(project, switch)
        except EnvBuildError as e:  # the registry step: journaled, the next command finishes
            return _fail(res, "switch", f"{e}\nthe switch is journaled; the next doit command "
                         f"that builds {name} finishes it", start)  # fmt: skip
        lockdiff.write_reports(project.path("reports"), name, lockdiff.diff(current, candidate))
    res["tarball_bytes"] = (project.root / switch.tarball).stat().st_size
    res["image"] = switch.image
    return NightlyResult(**res, status="promoted", seconds=round(time.monotonic() - start, 2))


def _reason(e: BaseException) -> str:
    """An error as a report line: an OSError names its file and what the system said."""
    if isinstance(e, OSError) and not isinstance(e, EnvBuildError):
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror or e} (errno {e.errno}); free space or fix the path and rerun"
    return str(e)


def proposed_lockfile(project: Project, name: str) -> Path:
    return project.path("reports") / f"{name}.proposed.conda-lock.yml"


def _propose(
    project: Project,
    name: str,
    current: Lockfile | None,
    candidate: Lockfile,
    res: dict[str, Any],
    start: float,
) -> NightlyResult:
    """The candidate passed: write its lock and the diff to reports/ (what a pull request
    carries) and discard its build; the current environment, lock, tarball and image stay."""
    lock_mod.write_lockfile(candidate, proposed_lockfile(project, name))
    lockdiff.write_reports(project.path("reports"), name, lockdiff.diff(current, candidate))
    promotion.discard_candidate(project, name)
    log.info("nightly %s: proposed %s", name, proposed_lockfile(project, name))
    return NightlyResult(**res, status="proposed", seconds=round(time.monotonic() - start, 2))


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
