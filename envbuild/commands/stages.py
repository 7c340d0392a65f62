"""Stage executors called by doit actions: ``(project root, environment name)`` -> side effect.

Each loads the project and recipe, checks the stage's precondition, delegates to the stage
module and records its state file atomically. Also the up-to-date checks, which never solve.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from envbuild.errors import (
    BuildError,
    DockerError,
    EnvBuildError,
    LockError,
    PackError,
    RecipeError,
    SmokeError,
    VerifyError,
)
from envbuild.graph import stage_inputs
from envbuild.graph.uptodate import (
    build_is_current,
    docker_is_current,
    lock_is_fresh,
    pack_is_current,
    smoke_is_current,
    template_sha,
    write_lock_stamp,
)
from envbuild.install import build as build_mod
from envbuild.install import conda_envs
from envbuild.layout import (
    build_record,
    build_state,
    current_build_id,
    docker_state,
    image_state,
    pack_record,
    pack_state,
    smoke_state,
    verify_report,
)
from envbuild.lock import solve as lock_mod
from envbuild.lock.epoch import lock_epoch
from envbuild.lock.lockfile import read_packages
from envbuild.ops import promotion
from envbuild.prefix import verify as verify_mod
from envbuild.project import Project, load_project
from envbuild.recipe.load import find_recipe, load_recipe
from envbuild.recipe.model import Recipe, current_subdir
from envbuild.recipe.validate import display
from envbuild.records import DockerRecord, ImageRecord, PackRecord, PackState, SmokeRecord
from envbuild.ship import docker as docker_mod
from envbuild.ship import engine as image_mod
from envbuild.ship import kernels
from envbuild.ship import pack as pack_mod
from envbuild.ship.smoke import smoke_env
from envbuild.util.fs import atomic_link, file_sha256, remove_tree
from envbuild.util.mutex import hold

log = logging.getLogger("envbuild")


def exclusive(project: Project, name: str, stage: str) -> contextlib.AbstractContextManager[None]:
    """One ``stage`` of environment ``name`` at a time across processes."""
    return hold(project.path("state") / f".{name}.{stage}.lock", f"{stage} of '{name}'")


def load(root: str | Path, name: str) -> tuple[Project, Recipe]:
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
        project.path("offline_channel"),
        project.path("offline_cache"),
        project.offline_pins,
        project.offline_requirements,
    )


def lock(root: str, name: str, update: str = "") -> None:
    project, recipe = load(root, name)
    names = tuple(u.strip() for u in update.split(",") if u.strip())
    with exclusive(project, name, "lock"):
        lock_mod.lock_recipe(recipe, project, names)
        write_lock_stamp(project, name, recipe.sources, lock_mod.fingerprint(recipe, project))


def stale_reasons(root: Path, names: list[str]) -> dict[str, str]:
    """name -> why its lock is stale, for each stale recipe among ``names``. No solve, no
    network, no conda-lock: the up-to-date check of the lock task, then the lockfile read
    plainly to say whether the platforms are what changed."""
    out = {}
    for name in names:
        try:
            project, recipe = load(root, name)
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
    names = project.selected(env)
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


@contextlib.contextmanager
def the_five(project: Project, name: str) -> Iterator[bool]:
    """Hold environment ``name``'s build mutex, the one lock of its five published artifacts
    (environment, lockfile, explicit files, tarball, image tag), after finishing or
    discarding what a killed run left (:func:`promotion.recover`). Yields True if another
    process switched the environment while this one waited (a nightly, a rollback): the
    caller then redoes only what is not current for that build."""
    before = current_build_id(project, name)
    with build_mod.build_mutex(project, name):
        recovered = promotion.recover(project, name)
        yield recovered or current_build_id(project, name) != before


def build(root: str, name: str) -> None:
    """Build envs/<name> from its lock, first finishing a promotion or rollback that was
    interrupted. A build of the lock asked for that became current while this one waited
    (or was recovered) does nothing; otherwise build: doit decided it must
    (``--always-execute`` included)."""
    project, recipe = load(root, name)
    with the_five(project, name) as moved:
        if not (moved and build_is_current(project.root, name)):
            build_mod.build_locked(recipe, project)
    record_build_state(project, name)
    conda_envs.register(project, name)  # the stable path: a no-op once it is listed


def record_build_state(project: Project, name: str) -> None:
    """Write build/state/<name>.build.json for the current build (the smoke task's input)."""
    _current_build(project, name).save(build_state(project, name))


def verify(root: str, name: str) -> None:
    """Compare envs/<name> with its lock; print a table, write reports/<name>.verify.json.
    Raises VerifyError if anything differs."""
    project, _recipe = load(root, name)  # validates the recipe exists
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
    project, recipe = load(root, name)
    with the_five(project, name) as moved:
        if not (moved and smoke_is_current(project.root, name)):
            _smoke(project, recipe, name)


def _smoke(project: Project, recipe: Recipe, name: str) -> None:
    info = _current_build(project, name)
    report = smoke_state(project, name)
    remove_tree(report)  # a failed run must not leave an older pass behind
    spec = kernels.kernel_dir(name) / "kernel.json" if recipe.jupyter.kernel else ""
    stamp = stage_inputs.stamp(project, recipe, "smoke")
    try:
        smoke_env(
            name,
            recipe.smoke,
            project.env_prefix(name),
            report,
            info.build_id,
            recipe.variables,
            stamp,
            str(spec),
        )
    except SmokeError:
        remove_tree(report)
        raise
    # kept with the build: a rollback to it makes this record current again
    atomic_link(report, build_record(project, name, info.build_id, "smoke"))
    kernel = kernels.register(project, recipe)
    if kernel is not None:
        log.info("Jupyter kernel %s%s: %s", kernels.PREFIX, name, kernel)


def pack(root: str, name: str) -> None:
    """Pack the current build into dist/ (and keep it for rollback), under the build mutex:
    a nightly or rollback switching meanwhile is waited for, then only its build counts."""
    project, recipe = load(root, name)
    with the_five(project, name) as moved:
        if not (moved and pack_is_current(project.root, name)):
            _pack(project, recipe, name)


def _pack(project: Project, recipe: Recipe, name: str) -> None:
    info = _current_build(project, name)
    passed = SmokeRecord.peek(smoke_state(project, name))
    if passed is None or not passed.passed_for(info.build_id):
        msg = (
            f"environment '{name}' has not passed its smoke checks (build {info.build_id}); "
            f"run `doit smoke env={name}`"
        )
        raise PackError(msg)
    from envbuild.ship.sbom import SBOM_IN_PREFIX, write_sbom

    epoch = lock_epoch(project.lockfile(name))
    _sbom_file, sbom = write_sbom(project, name, info)  # also inside the tarball
    packed = pack_mod.pack_env(
        name,
        project.env_prefix(name),
        tarball(project, name),
        recipe.pack,
        recipe.smoke,
        recipe.variables,
        epoch,
        ((SBOM_IN_PREFIX, sbom.encode()),),
    )
    tb = packed.path
    # the same file under a second name: rollback restores it, gc removes it
    atomic_link(tb, history_tarball(project, name, info.build_id))
    stamp = stage_inputs.stamp(project, recipe, "pack")
    record = PackRecord(format=recipe.pack.format, unpacked_size=packed.unpacked_size,
                        inputs=stamp.inputs, sources=stamp.sources)  # fmt: skip
    record.save(pack_record(project, name, info.build_id))
    _record_pack(project, name, info.build_id, info.lock_sha256, tb, recipe, epoch)


def _record_pack(
    project: Project, name: str, build_id: str, lock_sha: str, tb: Path, recipe: Recipe, epoch: int
) -> None:
    """Print the tarball's sha256 and keep it beside the lock's in ``pack_state``. The same lock
    packed with the same options must give the same bytes (README, "Reproducible artifacts"):
    a different sha256 for a (lock, format, level) packed before is reported as an error in
    the log and recorded as ``reproduced: false`` (the tests fail on it)."""
    digest = file_sha256(tb)
    old = PackState.peek(pack_state(project, name))
    known = dict(old.known) if old else {}
    key = PackState.known_key(lock_sha, recipe.pack.format, recipe.pack.level)
    before = known.get(key)
    if before and before != digest:
        log.error(
            "%s packs differently from the same lock before: sha256 %s, was %s "
            "(an unreproducible build: please report it)",
            display(tb), digest, before,
        )  # fmt: skip
    known[key] = digest
    record = PackState(
        build_id=build_id,
        lock_sha256=lock_sha,
        epoch=epoch,
        format=recipe.pack.format,
        level=recipe.pack.level,
        tarball=tb.name,
        tarball_sha256=digest,
        reproduced=None if before is None else before == digest,
        known=known,
    )
    record.save(pack_state(project, name))
    log.info("%s sha256 %s", display(tb), digest)


def docker(root: str, name: str) -> None:
    """Render docker/<name>/; with ``[image] base``, write the image archive and SBOM (no
    engine needed) and, when an engine is reachable, load it and run the smoke checks inside;
    without a base, build the Dockerfile with the engine. Without an engine, say so and
    succeed."""
    project, recipe = load(root, name)
    with the_five(project, name) as moved:
        if not (moved and docker_is_current(project.root, name)):
            _docker(project, recipe, name)


def _docker(project: Project, recipe: Recipe, name: str) -> None:
    info = _current_build(project, name)
    tb = tarball(project, name)
    if not tb.exists():
        msg = f"{display(tb)} does not exist; run `doit pack env={name}`"
        raise EnvBuildError(msg)
    if not pack_is_current(project.root, name):  # an image must describe the current build
        msg = f"{display(tb)} is not build {info.build_id}'s tarball; run `doit pack env={name}`"
        raise EnvBuildError(msg)
    pid = image_mod.project_id(project.root)
    ctx = docker_mod.context_for(recipe, info.lock_sha256, info.build_id, pid)
    text = docker_mod.render(project.path("templates"), ctx)
    try:
        path = docker_mod.write_context(tb, project.path("docker") / name, text)
    except OSError as e:  # a full disk, say: staged, so the previous context stays
        msg = f"writing the Docker context of '{name}' failed: {e}; the previous one is kept"
        raise DockerError(msg) from None
    stamp = stage_inputs.stamp(project, recipe, "docker")
    rendered = DockerRecord(
        build_id=info.build_id,
        template_sha256=template_sha(project),
        tarball=stage_inputs.file_identity(tb),
        inputs=stamp.inputs,
        sources=stamp.sources,
    )
    rendered.save(docker_state(project, name))
    log.info("rendered %s", display(path))
    if project.image_base:  # the image written without an engine, then checked in one
        from envbuild.deliver.registry_base import ensure_base
        from envbuild.ship import oci_stage

        ensure_base(project)  # a base named by registry and digest: pulled once
        oci_stage.write(project, recipe, info)
        return
    if not image_mod.engine_available():
        log.info("no Docker engine reachable: image for '%s' not built", name)
        return
    img = image_mod.build(path.parent, name, info.lock_sha256, info.build_id, pid)
    image_mod.smoke(img.tag, recipe.smoke)
    record = ImageRecord(tag=img.tag, id=img.id, size=img.size, build_id=info.build_id,
                         inputs=rendered.inputs)  # fmt: skip
    record.save(image_state(project, name))
    record.save(build_record(project, name, info.build_id, "image"))
    log.info("built image %s (%.1f MB); smoke checks passed inside it", img.tag, img.size / 1e6)


def history_tarball(project: Project, name: str, build_id: str) -> Path:
    """Where the tarball of one build is kept for rollback: dist/history/<name>/<id>.<fmt>."""
    current = tarball(project, name)
    fmt = current.name.split(".", 1)[1]
    return pack_mod.history_path(project.path("dist"), name, build_id, fmt)
