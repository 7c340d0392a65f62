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
from envbuild import kernels, promotion
from envbuild import lock as lock_mod
from envbuild import pack as pack_mod
from envbuild import verify as verify_mod
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
    read_json,
    smoke_state,
    template_sha,
    verify_report,
    write_lock_stamp,
)
from envbuild.validate import display

log = logging.getLogger("envbuild")


def exclusive(project: Project, name: str, stage: str) -> contextlib.AbstractContextManager[None]:
    """One ``stage`` of environment ``name`` at a time across processes."""
    return hold(project.path("state") / f".{name}.{stage}.lock", f"{stage} of '{name}'")


def selected_names(project: Project, env: str) -> list[str]:
    """The environments named in ``env`` (comma-separated), or every recipe."""
    return [e for e in env.split(",") if e] or project.recipe_names()


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
        project.path("offline_channel"), project.path("offline_cache"), project.offline_requirements
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
    names = selected_names(project, env)
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
    project, recipe = load(root, name)
    with build_mod.build_mutex(project, name):
        # a finished switch (or a discarded candidate) may leave nothing to build; otherwise
        # build: doit decided it must (`--always-execute` included)
        if not (promotion.recover(project, name) and build_is_current(project.root, name)):
            build_mod.build_locked(recipe, project)
    record_build_state(project, name)


def record_build_state(project: Project, name: str) -> None:
    """Write build/state/<name>.build.json for the current build (the smoke task's input)."""
    atomic_write(build_state(project, name), _current_build(project, name).to_json())


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
    kernel = kernels.register(project, recipe)
    if kernel is not None:
        log.info("Jupyter kernel %s%s: %s", kernels.PREFIX, name, kernel)


def pack(root: str, name: str) -> None:
    project, recipe = load(root, name)
    info = _current_build(project, name)
    passed = read_json(smoke_state(project, name))
    if not passed or passed.get("build_id") != info.build_id or passed.get("status") != "passed":
        msg = (
            f"environment '{name}' has not passed its smoke checks (build {info.build_id}); "
            f"run `doit smoke env={name}`"
        )
        raise PackError(msg)
    with exclusive(project, name, "pack"):
        from envbuild.sbom import SBOM_IN_PREFIX, write_sbom

        _sbom_file, sbom = write_sbom(project, name, info)  # also inside the tarball
        tb = pack_mod.pack_env(
            name,
            project.env_prefix(name),
            tarball(project, name),
            recipe.pack,
            recipe.smoke,
            recipe.variables,
            ((SBOM_IN_PREFIX, sbom.encode()),),
        )
        # the same file under a second name: rollback restores it, gc removes it
        atomic_link(tb, history_tarball(project, name, info.build_id))


def docker(root: str, name: str) -> None:
    """Render docker/<name>/; with ``[image] base``, write the image archive and SBOM (no
    engine needed) and, when an engine is reachable, load it and run the smoke checks inside;
    without a base, build the Dockerfile with the engine. Without an engine, say so and
    succeed."""
    project, recipe = load(root, name)
    info = _current_build(project, name)
    tb = tarball(project, name)
    if not tb.exists():
        msg = f"{display(tb)} does not exist; run `doit pack env={name}`"
        raise EnvBuildError(msg)
    ctx = docker_mod.context_for(recipe, info.lock_sha256, info.build_id)
    text = docker_mod.render(project.path("templates"), ctx)
    with exclusive(project, name, "docker"):
        try:
            path = docker_mod.write_context(tb, project.path("docker") / name, text)
        except OSError as e:  # a full disk, say: staged, so the previous context stays
            msg = f"writing the Docker context of '{name}' failed: {e}; the previous one is kept"
            raise DockerError(msg) from None
        atomic_write(
            docker_state(project, name),
            json.dumps({"build_id": info.build_id, "template_sha256": template_sha(project)}),
        )
        log.info("rendered %s", display(path))
        if project.image_base:  # the image written without an engine, then checked in one
            from envbuild import oci_stage

            oci_stage.write(project, recipe, info)
            return
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
    return pack_mod.history_path(project.path("dist"), name, build_id, fmt)


def clean(root: str, stage: str, name: str) -> None:
    """``doit clean <stage>:<name>``: remove what that stage made for environment ``name``
    (never another environment's, never a lockfile: lockfiles are committed sources).

    build: every build of ``name`` and ``envs/<name>`` (under its build mutex); smoke: its
    record; pack: its tarballs and SBOM, kept ones included; docker: ``docker/<name>/`` and its
    records (images are ``doit gc``'s)."""
    project = load_project(Path(root))
    if stage == "build":
        with build_mod.build_mutex(project, name):
            remove_tree(project.env_prefix(name))
            for d in build_mod.build_dirs(project, name):
                build_mod.remove_build(d)
            remove_tree(build_mod.builds_root(project, name))
            remove_tree(build_mod.trash_dir(project, name))
            remove_tree(build_state(project, name))
    elif stage == "smoke":
        remove_tree(smoke_state(project, name))
    elif stage == "pack":
        for f in [*project.path("dist").glob(f"{name}-*.tar.*"),
                  *project.path("dist").glob(f"{name}-*.cdx.json")]:  # fmt: skip
            remove_tree(f)
        remove_tree(project.path("dist") / "history" / name)
    elif stage == "docker":
        remove_tree(project.path("docker") / name)
        remove_tree(docker_state(project, name))
        remove_tree(image_state(project, name))
        for f in project.path("dist").glob(f"{name}-*.oci.tar"):
            remove_tree(f)
    log.info("cleaned %s of %s", stage, name)
