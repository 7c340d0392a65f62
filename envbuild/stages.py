"""Stage executors called by doit actions: ``(project root, environment name)`` -> side effect.

Each loads the project and recipe, checks the stage's precondition, delegates to the stage
module and records its state file atomically. Also the up-to-date checks, which never solve.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from envbuild import build as build_mod
from envbuild import docker as docker_mod
from envbuild import image as image_mod
from envbuild import lock as lock_mod
from envbuild import lockdiff, promotion
from envbuild import pack as pack_mod
from envbuild import verify as verify_mod
from envbuild.errors import (
    BuildError,
    EnvBuildError,
    LockError,
    PackError,
    RecipeError,
    SmokeError,
    VerifyError,
)
from envbuild.fs import atomic_link, atomic_write, remove_tree
from envbuild.lockfile import read_packages
from envbuild.mutex import hold
from envbuild.project import Project, load_project
from envbuild.recipe import find_recipe, load_recipe
from envbuild.recipe_model import Recipe, current_subdir
from envbuild.smoke import smoke_env
from envbuild.state import (
    build_is_current,
    build_record,
    build_state,
    docker_state,
    image_state,
    lock_is_fresh,
    project_at,
    read_json,
    smoke_state,
    template_sha,
    verify_report,
    write_lock_stamp,
)
from envbuild.validate import display

log = logging.getLogger("envbuild")


def _exclusive(project: Project, name: str, stage: str) -> contextlib.AbstractContextManager[None]:
    """One ``stage`` of environment ``name`` at a time across processes."""
    return hold(project.path("state") / f".{name}.{stage}.lock", f"{stage} of '{name}'")


def _names(project: Project, env: str) -> list[str]:
    """The environments named in ``env`` (comma-separated), or every recipe."""
    return [e for e in env.split(",") if e] or project.recipe_names()


def _load(root: str | Path, name: str) -> tuple[Project, Recipe]:
    project = load_project(Path(root))
    path = find_recipe(project.path("recipes"), name, project.recipe_names())
    return project, load_recipe(path, project.platforms)


def tarball(project: Project, name: str) -> Path:
    """``dist/<name>-<this platform>.<format>`` (format from the recipe, tar.zst if unreadable)."""
    try:
        fmt = load_recipe(project.recipe_file(name), project.platforms).pack.format
    except RecipeError:
        fmt = "tar.zst"
    return pack_mod.tarball_path(project.path("dist"), name, current_subdir(), fmt)


def offline_channel(root: str) -> None:
    from envbuild.offline.channel import build_offline_channel

    project = load_project(Path(root))
    build_offline_channel(
        project.path("offline_channel"), project.path("offline_cache"), project.offline_requirements
    )


def lock(root: str, name: str, update: str = "") -> None:
    project, recipe = _load(root, name)
    names = tuple(u.strip() for u in update.split(",") if u.strip())
    with _exclusive(project, name, "lock"):
        lock_mod.lock_recipe(recipe, project, names)
        write_lock_stamp(project, name, recipe.sources, lock_mod.fingerprint(recipe, project))


def relock(root: str, name: str) -> None:
    """A nightly's lock step alone: solve ``name`` afresh for every platform it names (the
    current lock never constrains it; cutoff as the nightly's) and publish the lockfile,
    explicit files and diff reports only if the packages changed. Prints one line."""
    from envbuild.nightly import night_cutoff, same_packages

    project, recipe = _load(root, name)
    with _exclusive(project, name, "lock"):
        path = project.lockfile(name)
        old = lock_mod.read_lockfile(path) if path.exists() else None
        new = lock_mod.plan_lock(recipe, project, cutoff=night_cutoff(recipe, project))
        if same_packages(old, new):
            print(f"{name}: unchanged")
            return
        result = lock_mod.publish_lock(recipe, project, new, old)
        write_lock_stamp(project, name, recipe.sources, lock_mod.fingerprint(recipe, project))
    print(f"{name}: relocked ({lockdiff.summary(list(result.changes))})")


def ci_merge(root: str, artifacts: str, env: str = "") -> None:
    """The scheduled workflow's merge step (see :mod:`envbuild.ci`): print the outcome per
    recipe; the pull-request body goes to reports/nightly-pr.md."""
    from envbuild import ci

    project = load_project(Path(root))
    recipes = [_load(root, n)[1] for n in _names(project, env)]
    merged = ci.merge(project, recipes, Path(root) / artifacts)
    for name, what in merged.outcome.items():
        print(f"{name}: {what}")
    print(f"wrote {display(merged.body)}")


def export(root: str, name: str) -> None:
    """``doit export env=NAME``: ``dist/<name>.environment.yml`` (the recipe's top-level specs,
    for ``conda env create -f``) and ``dist/<name>-<platform>.explicit.txt`` (the lock's
    explicit files, for ``conda create --file``). Raises LockError if it is not locked."""
    from envbuild import environment_yml
    from envbuild.lockfile import explicit_path

    project, recipe = _load(root, name)
    locked = read_packages(project.lockfile(name))
    out = project.path("dist") / f"{name}.environment.yml"
    text = environment_yml.render(
        name,
        recipe.channels,
        recipe.dependencies,
        recipe.pypi_dependencies,
        recipe.variables,
    )
    atomic_write(out, text)
    print(f"wrote {display(out)}")
    for platform in locked.platforms:
        src = explicit_path(project, name, platform)
        if not src.exists():
            msg = f"{display(src)} is missing; run `doit lock env={name}` to write it"
            raise LockError(msg)
        dest = project.path("dist") / src.name
        atomic_write(dest, src.read_bytes())
        print(f"wrote {display(dest)}")


def stale_reasons(root: Path, names: list[str]) -> dict[str, str]:
    """name -> why its lock is stale, for each stale recipe among ``names``. No solve, no
    network, no conda-lock: the up-to-date check of the lock task, then the lockfile read
    plainly to say whether the platforms are what changed."""
    out = {}
    for name in names:
        try:
            project, recipe = _load(root, name)
        except EnvBuildError as e:
            out[name] = f"recipe error: {e}"
            continue
        path = project.lockfile(name)
        if not path.exists():
            out[name] = "no lockfile"
            continue
        try:
            lockfile = read_packages(path)
        except EnvBuildError as e:
            out[name] = str(e)
            continue
        if lock_is_fresh(project.root, name):
            continue
        locked = sorted(lockfile.platforms)
        if locked != sorted(recipe.platforms):
            out[name] = (
                f"{display(path)} is locked for {', '.join(locked)} but the recipe now lists "
                f"{', '.join(sorted(recipe.platforms))}; run `doit lock env={name}`"
            )
        else:
            out[name] = "the recipe's solve inputs changed since it was locked"
    return out


def check(root: str, env: str = "") -> None:
    """Print each recipe's lock state; LockError (non-zero exit) if any is stale."""
    project = load_project(Path(root))
    names = _names(project, env)
    stale = stale_reasons(Path(root), names)
    for name in names:
        print(f"{name}: {'STALE: ' + stale[name] if name in stale else 'up to date'}")
    if stale:
        msg = f"{len(stale)} of {len(names)} lockfile(s) stale: {', '.join(stale)}; run `doit lock`"
        raise LockError(msg)


def _current_build(project: Project, name: str) -> build_mod.BuildInfo:
    info = build_mod.read_marker(project.env_prefix(name))
    if info is None:
        msg = (
            f"environment '{name}' is not built ({display(project.env_prefix(name))}); "
            f"run `doit build env={name}`"
        )
        raise BuildError(msg)
    return info


def build(root: str, name: str) -> None:
    """Build envs/<name> from its lock, first finishing a promotion or rollback that was
    interrupted (which may leave nothing to build)."""
    project, recipe = _load(root, name)
    with build_mod.build_mutex(project, name):
        promotion.recover(project, name)
        if not build_is_current(project.root, name):
            build_mod.build_locked(recipe, project)
    record_build_state(project, name)


def record_build_state(project: Project, name: str) -> None:
    """Write build/state/<name>.build.json for the current build (the smoke task's input)."""
    atomic_write(build_state(project, name), _current_build(project, name).to_json())


def verify(root: str, name: str) -> None:
    """Compare envs/<name> with its lock; print a table, write reports/<name>.verify.json.
    Raises VerifyError if anything differs."""
    project, _recipe = _load(root, name)  # validates the recipe exists
    lockfile = lock_mod.read_lockfile(project.lockfile(name))
    prefix = project.env_prefix(name)
    info = build_mod.read_marker(prefix)
    findings = verify_mod.verify_prefix(
        prefix, lockfile, current_subdir(), info.prefix if info else ""
    )
    print(f"{name}: {verify_mod.table(findings)}")
    report = verify_report(project, name)
    verify_mod.write_report(report, name, info.build_id if info else "", findings)
    if findings:
        kinds = sorted({f.kind for f in findings})
        msg = (
            f"environment '{name}' does not match {display(project.lockfile(name))}: "
            f"{len(findings)} finding(s) ({', '.join(kinds)}); details in "
            f"{display(report)}; `doit build env={name}` recreates it from the lock"
        )
        raise VerifyError(msg)


def smoke(root: str, name: str) -> None:
    project, recipe = _load(root, name)
    info = _current_build(project, name)
    report = smoke_state(project, name)
    remove_tree(report)  # a failed run must not leave an older pass behind
    try:
        smoke_env(
            name, recipe.smoke, project.env_prefix(name), report, info.build_id, recipe.variables
        )
    except SmokeError:
        remove_tree(report)
        raise
    # kept with the build: a rollback to it makes this record current again
    atomic_link(report, build_record(project, name, info.build_id, "smoke"))


def pack(root: str, name: str) -> None:
    project, recipe = _load(root, name)
    info = _current_build(project, name)
    passed = read_json(smoke_state(project, name))
    if not passed or passed.get("build_id") != info.build_id or passed.get("status") != "passed":
        msg = (
            f"environment '{name}' has not passed its smoke checks (build {info.build_id}); "
            f"run `doit smoke env={name}`"
        )
        raise PackError(msg)
    with _exclusive(project, name, "pack"):
        tb = pack_mod.pack_env(
            name,
            project.env_prefix(name),
            tarball(project, name),
            recipe.pack,
            recipe.smoke,
            recipe.variables,
        )
        # the same file under a second name: rollback restores it, gc removes it
        atomic_link(tb, history_tarball(project, name, info.build_id))


def docker(root: str, name: str) -> None:
    """Render docker/<name>/ and, when a Docker engine is reachable, build the image and run
    the smoke checks inside it; without an engine, say so and succeed."""
    project, recipe = _load(root, name)
    info = _current_build(project, name)
    tb = tarball(project, name)
    if not tb.exists():
        msg = f"{display(tb)} does not exist; run `doit pack env={name}`"
        raise EnvBuildError(msg)
    ctx = docker_mod.context_for(recipe, info.lock_sha256, info.build_id)
    text = docker_mod.render(project.path("templates"), ctx)
    with _exclusive(project, name, "docker"):
        path = docker_mod.write_context(tb, project.path("docker") / name, text)
        atomic_write(
            docker_state(project, name),
            json.dumps({"build_id": info.build_id, "template_sha256": template_sha(project)}),
        )
        log.info("rendered %s", display(path))
        if not image_mod.engine_available():
            log.info("no Docker engine reachable: image for '%s' not built", name)
            return
        img = image_mod.build(path.parent, name, info.lock_sha256, info.build_id)
        image_mod.smoke(img.tag, recipe.smoke)
        record = {"tag": img.tag, "id": img.id, "size": img.size, "build_id": info.build_id}
        atomic_write(image_state(project, name), json.dumps(record, indent=2))
        atomic_write(build_record(project, name, info.build_id, "image"), json.dumps(record))
        log.info("built image %s (%.1f MB); smoke checks passed inside it", img.tag, img.size / 1e6)


def history_tarball(project: Project, name: str, build_id: str) -> Path:
    """Where the tarball of one build is kept for rollback: dist/history/<name>/<id>.<fmt>."""
    current = tarball(project, name)
    fmt = current.name.split(".", 1)[1]
    return project.path("dist") / "history" / name / f"{build_id}.{fmt}"


def nightly_env(root: str, name: str) -> None:
    """One recipe's nightly rebuild; the outcome (never an exception for an expected failure)
    goes to build/state/nightly/<name>.result.json for :func:`nightly_report`."""
    from envbuild.nightly import NightlyResult, nightly_recipe

    project = load_project(Path(root))
    try:
        _, recipe = _load(root, name)
        result = nightly_recipe(recipe, project)
    except EnvBuildError as e:
        result = NightlyResult(recipe=name, status="failed", stage="recipe", error=str(e))
    atomic_write(project.path("state") / "nightly" / f"{name}.result.json", result.to_json())


def nightly_report(root: str, env: str = "") -> None:
    """Write reports/nightly.md and .json from the selected recipes' results; raise (non-zero
    exit) if any environment failed."""
    from envbuild.nightly import NightlyResult, write_report

    project = load_project(Path(root))
    names = _names(project, env)
    results = []
    for name in names:
        data = read_json(project.path("state") / "nightly" / f"{name}.result.json")
        results.append(
            NightlyResult(**data)
            if data
            else NightlyResult(
                recipe=name,
                status="failed",
                stage="nightly",
                error="no result (the run did not finish)",
            )
        )
    md, _ = write_report(project, results)
    print(md.read_text())
    failed = [r.recipe for r in results if r.status not in ("promoted", "proposed", "unchanged")]
    if failed:
        msg = (
            f"nightly failed for {', '.join(failed)} (kept their current builds); see {display(md)}"
        )
        raise EnvBuildError(msg)


def rollback(root: str, name: str) -> None:
    project, recipe = _load(root, name)
    build_id = promotion.rollback(project, recipe, tarball(project, name))
    print(f"{name}: now at build {build_id}")


def gc(root: str, dry_run: bool = False) -> None:
    """Remove (or with ``dry_run`` only list) what :func:`envbuild.gc.plan` finds."""
    from envbuild import gc as gc_mod

    project = load_project(Path(root))
    items = gc_mod.plan(project)
    print(gc_mod.table(items))
    if dry_run:
        print("dry run: nothing removed")
        return
    freed = gc_mod.collect(project, items)
    print(f"freed {freed / 1e6:.1f} MB")


def status(root: str, env: str = "", as_json: bool = False) -> None:
    """Print every selected environment's status (table, or JSON with ``as_json``)."""
    from envbuild import status as status_mod

    project = project_at(Path(root))
    rows = [status_mod.env_status(project, name) for name in _names(project, env)]
    print(status_mod.to_json(rows) if as_json else status_mod.table(rows))


def schedule(root: str, env: str = "") -> None:
    from envbuild import schedule as schedule_mod

    project = load_project(Path(root))
    names = _names(project, env)
    recipes = [_load(root, n)[1] for n in names]
    for path in schedule_mod.write(project, recipes):
        print(f"wrote {display(path)}")
