"""The up-to-date decisions doit asks for, from the small records :mod:`envbuild.layout` names.

Deliberately light: deciding "nothing to do" never imports conda-lock, pydantic or py-rattler,
never parses a lockfile through a model and never solves. The lock stamp keeps the sha256 of
every file the lock's fingerprint was computed from (recipe chain, ``envbuild.toml``); when all
still match, the lock is fresh without loading a recipe; when one differs (a comment was added,
say), the full fingerprint is compared (doit's ``config_changed`` idea, with a cheap first
look). Smoke, pack and docker records keep the fingerprint of their inputs
(:mod:`envbuild.graph.stage_inputs`): a stage is current only for the same build *and* inputs.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from envbuild.graph import stage_inputs
from envbuild.layout import (
    TEMPLATE,
    build_state,
    candidate_dir,
    current_build_id,
    current_tarball,
    docker_state,
    image_state,
    lock_stamp,
    pack_record,
    project_at,
    promotion_journal,
    read_marker,
    smoke_state,
    verify_report,
)
from envbuild.project import CONFIG_FILE, Project
from envbuild.records import (
    PASSED,
    BuildInfo,
    DockerRecord,
    ImageRecord,
    LockStamp,
    PackRecord,
    SmokeRecord,
    VerifyReport,
)
from envbuild.util.fs import file_sha256


def _sources(project: Project, files: tuple[Path, ...]) -> dict[str, str]:
    return stage_inputs.sources(project, files)


def write_lock_stamp(
    project: Project, name: str, recipe_files: tuple[Path, ...], fingerprint: str
) -> None:
    """Record what lockfile ``name`` was made from: the sha256 of ``recipe_files`` (the recipe
    and its ``extends`` parents) and of ``envbuild.toml``, the fingerprint, the lockfile's
    sha256."""
    stamp = LockStamp(
        sources=_sources(project, recipe_files),
        fingerprint=fingerprint,
        lockfile_sha256=file_sha256(project.lockfile(name)),
    )
    stamp.save(lock_stamp(project, name))


def lock_is_fresh(root: Path, name: str) -> bool:
    """True if ``locks/<name>.conda-lock.yml`` was made from the recipe as it is now.

    Fast path: the stamp's lockfile and source hashes all match (no recipe or lockfile
    parsing). Otherwise the recipe's fingerprint is computed and compared with the one in the
    lockfile, read with a plain YAML parser; a fresh lock then gets its stamp, so a lockfile
    that came from version control costs the slow path once. Never solves."""
    project = project_at(root)
    lockfile = project.lockfile(name)
    stamp = LockStamp.peek(lock_stamp(project, name))
    try:
        lock_sha = file_sha256(lockfile)
    except OSError:
        return False
    sources = stamp.sources if stamp else {}
    if stamp and stamp.lockfile_sha256 == lock_sha and sources:
        current = _sources(project, tuple(project.root / p for p in sources if p != CONFIG_FILE))
        if current == sources:
            return True
    # the slow path: recipe parsing and normalising (py-rattler's match spec parser)
    from envbuild.lock.lockfile import locked_fingerprint
    from envbuild.recipe.fingerprint import fingerprint
    from envbuild.recipe.load import load_recipe

    recipe = load_recipe(project.recipe_file(name), project.platforms)
    recorded = locked_fingerprint(lockfile)
    if recorded is None or recorded != fingerprint(recipe, project):
        return False
    # e.g. a lockfile from version control: the next check takes the fast path
    write_lock_stamp(project, name, recipe.sources, recorded)
    return True


def build_is_current(root: Path, name: str) -> bool:
    """True if envs/<name> is a complete build of the current lockfile, installed for the
    path it is at (not a copy of the project: its files would name the original), its state
    file names that build, and no verification found it drifted (a drifted environment is
    recreated)."""
    project = project_at(root)
    if promotion_journal(project, name).exists() or candidate_dir(project, name).exists():
        return False  # an interrupted switch or candidate: the build task settles it first
    prefix = project.env_prefix(name)
    info = read_marker(prefix)
    lock_path = project.lockfile(name)
    if info is None or not lock_path.exists() or info.lock_sha256 != file_sha256(lock_path):
        return False
    if info.prefix and os.path.realpath(info.prefix) != os.path.realpath(prefix):
        return False  # the project was copied or moved (cp -a): rebuild where it is now
    state = BuildInfo.peek(build_state(project, name))
    if state is None or state.build_id != info.build_id:
        return False
    report = VerifyReport.peek(verify_report(project, name))
    return not (report and report.drifted_for(info.build_id))


def smoke_is_current(root: Path, name: str) -> bool:
    """True if the current build passed its smoke checks as the recipe states them now
    (imports, commands, variables, kernel options) and its kernelspec is still there."""
    project = project_at(root)
    report = SmokeRecord.peek(smoke_state(project, name))
    current = current_build_id(project, name)
    if current is None or report is None or not report.passed_for(current):
        return False
    kernel = report.kernel_spec
    if kernel and not Path(kernel).is_file():
        return False
    return stage_inputs.unchanged(project, name, "smoke", report, smoke_state(project, name))


def pack_is_current(root: Path, name: str) -> bool:
    """True if ``dist/<name>-<platform>.<fmt>`` is the tarball kept for the current build
    (``dist/history/<name>/<build id>.<fmt>``, the same file), packed from the recipe's pack
    options as they are now, after the build passed its smoke checks."""
    project = project_at(root)
    info = read_marker(project.env_prefix(name))
    if info is None:
        return False
    record = PackRecord.peek(pack_record(project, name, info.build_id))
    if record is None or not record.has_tarball_format:
        return False
    fmt = record.format
    kept = project.path("dist") / "history" / name / f"{info.build_id}.{fmt}"
    tarball = project.path("dist") / f"{name}-{info.platform}.{fmt}"
    try:
        if not os.path.samefile(tarball, kept):
            return False
    except OSError:
        return False
    smoke = SmokeRecord.peek(smoke_state(project, name))
    if smoke is None or not smoke.passed_for(info.build_id):
        return False
    return stage_inputs.unchanged(
        project, name, "pack", record, pack_record(project, name, info.build_id)
    )


def template_sha(project: Project) -> str:
    """sha256 of the Dockerfile template in effect (the project's, else envbuild's)."""
    from envbuild.util.templates import find

    return file_sha256(find(project.path("templates"), TEMPLATE))


@functools.lru_cache(maxsize=1)
def engine_available() -> bool:
    """Whether a Docker engine answers, asked once per process (not once per environment)."""
    from envbuild.ship import engine as image

    return image.engine_available()


def docker_is_current(root: Path, name: str) -> bool:
    """True if docker/<name>/ was rendered for the current build and tarball from the current
    template and the recipe's docker inputs as they are now (base image, user, uid, prefix,
    smoke checks, variables) and, when an engine is reachable, its image was built from it."""
    project = project_at(root)
    current = current_build_id(project, name)
    rendered = DockerRecord.peek(docker_state(project, name))
    if current is None or not (project.path("docker") / name / "Dockerfile").exists():
        return False
    tarball = current_tarball(project, name)
    if (
        rendered is None
        or rendered.build_id != current
        or rendered.template_sha256 != template_sha(project)
        or tarball is None
        or rendered.tarball != stage_inputs.file_identity(tarball)
    ):
        return False
    if not stage_inputs.unchanged(project, name, "docker", rendered, docker_state(project, name)):
        return False
    image = ImageRecord.peek(image_state(project, name))
    if project.image_base:  # the written image: of this build, on this base, checked if it can be
        return image is not None and _written_image_is_current(project, image, current)
    if not engine_available():
        return True
    return image is not None and image.build_id == current and image.inputs == rendered.inputs


def _written_image_is_current(project: Project, image: ImageRecord, build_id: str) -> bool:
    from envbuild.errors import EnvBuildError
    from envbuild.ship.base_image import local_base, manifest_digest

    archive = project.root / (image.archive or "-")
    if image.build_id != build_id or not archive.is_file():
        return False
    try:
        arch = image.architecture or "amd64"
        cache = project.path("base_cache")
        base = manifest_digest(Path(local_base(project.image_base, cache)[0]), arch)
    except EnvBuildError:
        return False  # a malformed [image] base: the stage says what is wrong
    if image.base != base:
        return False  # the base changed (or is gone): the stage says which
    return image.smoke == PASSED or not engine_available()
