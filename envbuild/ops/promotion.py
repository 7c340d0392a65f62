"""Switching an environment's published artifacts together: the environment
(``envs/<name>``), the lockfile, the explicit files, the tarball (``dist/``), the image tag
(``envbuild/<name>:current``) and, with ``[publish]``, the registry's ``:current`` (its image
pushed by digest before the switch), with the Docker context and the stage records that
describe them.

A nightly candidate (or a rollback target) is made complete first: built, smoke-tested,
verified, packed with its proof, imaged with its in-container smoke. Only then is a journal
(``build/state/<name>.promotion.json``) written, naming everything the switch needs; each
step after it is idempotent, so a switch killed at any point is rolled forward by the next
command that takes the environment's build mutex (``doit build``, ``doit nightly``,
``doit rollback``, and every other command that takes the mutex): :func:`recover`. Before
the journal exists nothing current has changed, and a leftover candidate (its build, kept
tarball, staged context, images and temporaries) is discarded by :func:`recover` instead.
A candidate's id is recorded (:func:`envbuild.install.build.candidate_file`) before its build
directory is created, so no kill leaves a build that recovery does not know; rollback only
targets builds that can be published whole (:func:`missing_for_rollback`).

Callers hold the environment's build mutex (:func:`envbuild.install.build.build_mutex`).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from envbuild.deliver import release
from envbuild.errors import BuildError, EnvBuildError, RegistryError
from envbuild.install import build as build_mod
from envbuild.layout import (
    build_record,
    build_state,
    candidate_dir,
    docker_state,
    image_state,
    promotion_journal,
    read_marker,
    smoke_state,
)
from envbuild.lock import solve as lock_mod
from envbuild.project import Project
from envbuild.recipe.model import Recipe
from envbuild.records import (
    BuildInfo,
    Candidate,
    DockerRecord,
    ImageRecord,
    Record,
    SmokeRecord,
    StageStamp,
    Switch,
)
from envbuild.ship import docker as docker_mod
from envbuild.ship import engine as image_mod
from envbuild.ship.oci_stage import kept_image
from envbuild.stages import inputs as stage_inputs
from envbuild.stages.docker import engine_available, template_sha
from envbuild.util import kill_points
from envbuild.util.fs import atomic_link, atomic_write, remove_tree

log = logging.getLogger("envbuild")
# beside a staged context: the docker record fields (inputs, sources) it was rendered from
DOCKER_INPUTS = "docker.inputs.json"

# The steps of a switch, in order; each is a kill point (util/kill_points.py) the tests arm to
# cut a switch right after it, for real (SIGKILL).
STEPS = (
    "journal", "environment", "lockfile", "explicit", "tarball", "context", "image", "registry",
    "state",
)  # fmt: skip


def discard_candidate(project: Project, name: str) -> None:
    """Remove the recorded candidate (:func:`envbuild.install.build.candidate_file`), unless it
    became current: its build directory, its kept tarball (image archive, SBOM), every image of
    that build (of this project only), the temporaries its stages left, and the staging
    directory."""
    staging = candidate_dir(project, name)
    noted = Candidate.peek(build_mod.candidate_file(project, name))
    build_id = noted.build_id if noted else ""
    current = read_marker(project.env_prefix(name))
    if build_id and (current is None or current.build_id != build_id):
        if engine_available():
            image_mod.remove_build_images(image_mod.project_id(project.root), build_id)
        build_mod.remove_build(build_mod.builds_root(project, name) / build_id)
        for kept in (project.path("dist") / "history" / name).glob(f"{build_id}.*"):
            remove_tree(kept)  # its tarball, image archive and SBOM
        remove_tree(build_record(project, name, build_id, "smoke"))
        remove_tree(build_record(project, name, build_id, "image"))
        log.info("discarded the unfinished candidate %s of %s", build_id, name)
    for leftover in leftovers(project, name):
        remove_tree(leftover)
    remove_tree(staging)


_PLATFORM = r"(?:linux|osx|win|emscripten|wasi|zos|freebsd)-[a-z0-9]+"


def leftovers(project: Project, name: str) -> list[Path]:
    """Temporaries of interrupted writes of ``name``'s tarballs and Docker context (staged
    ``*.tmp`` files, ``.link-*`` names): every writer of these holds the environment's build
    mutex, so under it they are nobody's work in progress (reads only)."""
    dist = project.path("dist")
    mine = re.compile(rf"\.{re.escape(name)}-{_PLATFORM}\.tar\.[a-z0-9]+\.")
    found = [p for p in (dist.iterdir() if dist.is_dir() else []) if mine.match(p.name)]
    for d in (dist / "history" / name, project.path("docker") / name):
        found += [p for p in (d.iterdir() if d.is_dir() else []) if p.name.startswith(".")]
    envs = project.path("envs")
    found += sorted(envs.glob(f".{name}.link-*")) if envs.is_dir() else []
    return sorted(found)


def _copy_record(kind: type[Record], source: Path, dest: Path) -> None:
    record = kind.peek(source)
    if record is None:
        remove_tree(dest)  # that build never passed this stage: the stage is not current
    else:
        record.save(dest)


def apply(project: Project, sw: Switch) -> None:
    """Journal ``sw``, make each artifact current (every step idempotent), then drop the
    journal and the staging directory. Raises EnvBuildError if the build is incomplete."""
    name, root = sw.name, project.root
    prefix = build_mod.builds_root(project, name) / sw.build_id
    info = read_marker(prefix)
    if info is None:
        msg = f"build {sw.build_id} of '{name}' is incomplete or gone; nothing was switched"
        raise EnvBuildError(msg)
    sw.save(promotion_journal(project, name))
    kill_points.reached("journal")
    build_mod.promote(project, name, sw.build_id)
    kill_points.reached("environment")
    atomic_write(project.lockfile(name), build_mod.lock_copy(prefix).read_bytes())
    kill_points.reached("lockfile")
    lock_mod.write_explicit(lock_mod.read_lockfile(project.lockfile(name)), project, name)
    kill_points.reached("explicit")
    dist = root / sw.dist_tarball
    if sw.tarball and (root / sw.tarball).exists():
        atomic_link(root / sw.tarball, dist)
    else:
        remove_tree(dist)  # that build was never packed: no older tarball may claim it
    _publish_kept(project, sw.name, sw.build_id, info.platform)
    kill_points.reached("tarball")
    _switch_context(project, sw)
    kill_points.reached("context")
    if engine_available():
        if sw.image:
            image_mod.retag(sw.image, image_mod.current_tag(name))
        else:
            _untag_current(project, name)
    kill_points.reached("image")
    if sw.registry and sw.registry_image and sw.registry == project.publish_registry:
        log.info("%s", release.move_current(project, name, sw.registry, sw.registry_image,
                                            sw.build_id))  # fmt: skip
    elif sw.registry:  # [publish] changed since: that is how a switch gives the registry up
        log.warning("%s: [publish] no longer names %s; its :current is left as it is",
                    name, sw.registry)  # fmt: skip
    kill_points.reached("registry")
    info.save(build_state(project, name))
    smoke = build_record(project, name, sw.build_id, "smoke")
    _copy_record(SmokeRecord, smoke, smoke_state(project, name))
    image = build_record(project, name, sw.build_id, "image")
    _copy_record(ImageRecord, image, image_state(project, name))
    kill_points.reached("state")
    remove_tree(promotion_journal(project, name))
    remove_tree(candidate_dir(project, name))
    published = ["its lockfile", "explicit files"]
    published.append("tarball" if sw.tarball else "no tarball (removed)")
    if engine_available():
        published.append(f"image {sw.image}" if sw.image else "no image (tag removed)")
    if sw.registry_image:
        published.append(f"{sw.registry}/{name.lower()}:current")
    log.info("%s: build %s is current, with %s", name, sw.build_id, ", ".join(published))


def _untag_current(project: Project, name: str) -> None:
    """Remove ``envbuild/<name>:current`` if it names one of this project's images (another
    project's recipe of the same name may hold that tag on a shared engine)."""
    try:
        img = image_mod.inspect(image_mod.current_tag(name))
    except EnvBuildError:
        return
    if img.project in ("", image_mod.project_id(project.root)):
        image_mod.untag(image_mod.current_tag(name))


def _publish_kept(project: Project, name: str, build_id: str, platform: str) -> None:
    """Publish the image archive and SBOM kept with build ``build_id`` as
    ``dist/<name>-<platform>.{oci.tar,cdx.json}``; remove a published one that build never
    had (no older file may claim it)."""
    kept = project.path("dist") / "history" / name
    for suffix in ("oci.tar", "cdx.json"):
        published = project.path("dist") / f"{name}-{platform}.{suffix}"
        if (kept / f"{build_id}.{suffix}").exists():
            atomic_link(kept / f"{build_id}.{suffix}", published)
        else:
            remove_tree(published)


def _switch_context(project: Project, sw: Switch) -> None:
    out = project.path("docker") / sw.name
    staged = project.root / sw.context if sw.context else None
    if staged is not None and (staged / "Dockerfile").exists():
        for f in (docker_mod.CONTEXT_ARCHIVE, "Dockerfile"):
            atomic_link(staged / f, out / f)
        stamp = StageStamp.peek(staged.parent / DOCKER_INPUTS)
        DockerRecord(
            build_id=sw.build_id,
            template_sha256=template_sha(project),
            tarball=stage_inputs.file_identity(project.root / sw.dist_tarball),
            inputs=stamp.inputs if stamp else "",
            sources=stamp.sources if stamp else {},
        ).save(docker_state(project, sw.name))
    elif (rendered := DockerRecord.peek(docker_state(project, sw.name))) is None or (
        rendered.build_id != sw.build_id
    ):
        remove_tree(docker_state(project, sw.name))  # `doit docker` renders it again


def misplaced(project: Project, name: str, sw: Switch) -> str:
    """What in journal ``sw`` (read from ``name``'s journal file) points outside the places a
    switch of ``name`` writes (:meth:`Switch.misplaced`), or "": a switch links and removes
    what its journal names, and anyone with write access to build/state can edit it."""
    dist = project.path("dist")
    return sw.misplaced(project.root, name, dist, dist / "history" / name,
                        candidate_dir(project, name) / "docker")  # fmt: skip


def recover(project: Project, name: str) -> bool:
    """Finish a switch whose journal exists (roll forward), else discard a candidate left by
    a run that died before its switch. Caller holds the build mutex. Returns True if it did
    either (the caller then asks again whether anything is left to do)."""
    journal = promotion_journal(project, name)
    if journal.exists() or journal.is_symlink():
        sw = Switch.peek(journal)
        if sw is not None and (wrong := misplaced(project, name, sw)):
            log.warning("%s: %s; the journal is discarded, nothing is switched", journal, wrong)
            sw = None
        if sw is not None and read_marker(build_mod.builds_root(project, name) / sw.build_id):
            log.info("finishing the interrupted switch of %s to build %s", name, sw.build_id)
            try:
                apply(project, sw)
            except RegistryError as e:  # the journal stays: the next command finishes it
                msg = (
                    f"the interrupted switch of '{name}' to build {sw.build_id} could not "
                    f"finish: {e}\nits journal is kept: the next command finishes it once that "
                    f"registry step succeeds (or change [publish] to leave {sw.registry} as it is)"
                )
                raise RegistryError(msg) from None
            return True
        remove_tree(promotion_journal(project, name))  # unreadable, or its build is gone
    if candidate_dir(project, name).exists():
        discard_candidate(project, name)
        return True
    return False


def stage_context(
    project: Project, recipe: Recipe, build_id: str, lock_sha256: str, tarball: Path
) -> Path:
    """Render the Docker context of build ``build_id`` (its Dockerfile, ``tarball``
    decompressed) into the staging directory; returns the directory."""
    ctx = docker_mod.context_for(recipe, lock_sha256, build_id, image_mod.project_id(project.root))
    text = docker_mod.render(project.path("templates"), ctx)
    out = candidate_dir(project, recipe.name) / "docker"
    docker_mod.write_context(tarball, out, text)
    stage_inputs.stamp(project, recipe, "docker").save(out.parent / DOCKER_INPUTS)
    return out


def _image_of(project: Project, name: str, info: BuildInfo) -> str:
    """The tag of build ``info``'s image if this project's engine still has it, else ""."""
    pid = image_mod.project_id(project.root)
    tag = image_mod.tag_for(name, info.lock_sha256, pid)
    try:
        img = image_mod.inspect(tag)
    except EnvBuildError:
        return ""  # its image is gone (or was never built)
    # the tag names the lock: another build of the same lock (a forced rebuild) made the same
    # bytes (reproducible), and a written image has no build id at all
    return tag if img.project in (pid, "") else ""


def _kept_tarball(
    project: Project, name: str, build_id: str, fmt: str | None = None
) -> Path | None:
    """The kept tarball of ``build_id`` (in format ``fmt`` if given: ``tar.zst``), or None."""
    history = project.path("dist") / "history" / name
    if fmt is not None:
        found = history / f"{build_id}.{fmt}"
        return found if found.exists() else None
    return next(iter(sorted(history.glob(f"{build_id}.tar.*"))), None)


def missing_for_rollback(project: Project, name: str, build_id: str) -> list[str]:
    """What build ``build_id`` lacks to be published again: its smoke record (passed), its
    kept tarball, and, where an engine makes images, its image. Empty: a rollback target."""
    info = read_marker(build_mod.builds_root(project, name) / build_id)
    if info is None:
        return ["its completion marker"]
    missing = []
    smoke = build_record(project, name, build_id, "smoke")
    passed = SmokeRecord.peek(smoke)
    if passed is None or not passed.passed:
        missing.append(f"a passed smoke record ({smoke.name})")
    if _kept_tarball(project, name, build_id) is None:
        missing.append(f"a kept tarball (dist/history/{name}/{build_id}.tar.*)")
    if engine_available() and not _image_of(project, name, info):
        tag = image_mod.tag_for(name, info.lock_sha256, image_mod.project_id(project.root))
        missing.append(f"its image ({tag} of this build)")
    registry, archive = project.publish_registry, kept_image(project, name, build_id)
    if registry and not archive.is_file() and not release.recorded_image(project, name, build_id):
        missing.append(f"its image archive ({archive.name}) for {registry}")  # :current moves
    return missing


def rollback_switch(project: Project, recipe: Recipe, target: Path, dist_tarball: Path) -> Switch:
    """The switch back to the complete build ``target``: its kept tarball and image if they
    still exist, a context rendered from that tarball, and with ``[publish]`` its image
    pushed by digest (RegistryError if the registry fails: nothing switched)."""
    info = read_marker(target)
    assert info is not None
    name, root = recipe.name, project.root
    # the kept tarball in the format published at dist_tarball (a build repacked in another
    # format has one of each)
    kept = _kept_tarball(project, name, info.build_id, dist_tarball.name.split(".", 1)[1])
    context = ""
    if kept is not None:
        context = os.path.relpath(
            stage_context(project, recipe, info.build_id, info.lock_sha256, kept), root
        )
    image = _image_of(project, name, info) if engine_available() else ""
    registry = project.publish_registry
    # pushed by digest before the journal (a no-op for a build already there); the switch
    # moves :current
    pushed = (
        release.push_build(project, name, info.build_id, recipe.smoke.imports) if registry else ""
    )
    return Switch(
        name=name,
        build_id=info.build_id,
        dist_tarball=os.path.relpath(dist_tarball, root),
        tarball=os.path.relpath(kept, root) if kept else "",
        context=context,
        image=image,
        registry=registry,
        registry_image=pushed,
    )


def rollback(project: Project, recipe: Recipe, dist_tarball: Path) -> str:
    """Switch environment ``recipe.name`` back to the newest earlier build that can be
    published whole (:func:`missing_for_rollback`), with its lockfile, explicit files,
    tarball (published at ``dist_tarball``) and image. Returns its build id. Raises
    BuildError if there is none, naming what each earlier build lacks."""
    name = recipe.name
    with build_mod.build_mutex(project, name):
        recover(project, name)
        current = read_marker(project.env_prefix(name))
        older = [
            d
            for d in build_mod.complete_builds(project, name)
            if current is None or d.name < current.build_id
        ]
        if not older:
            msg = f"environment '{name}' has no earlier build to roll back to"
            raise BuildError(msg)
        lacking = {d.name: missing_for_rollback(project, name, d.name) for d in older}
        usable = [d for d in older if not lacking[d.name]]
        if not usable:
            why = "; ".join(f"{b} lacks {', '.join(m)}" for b, m in reversed(lacking.items()))
            msg = (
                f"environment '{name}' has no earlier build that can be published whole: {why}; "
                "nothing was switched"
            )
            raise BuildError(msg)
        for d in older[older.index(usable[-1]) + 1 :]:
            log.warning("not rolling back to %s: it lacks %s", d.name, ", ".join(lacking[d.name]))
        sw = rollback_switch(project, recipe, usable[-1], dist_tarball)
        apply(project, sw)
        log.info("rolled %s back to build %s", name, sw.build_id)
        return sw.build_id
