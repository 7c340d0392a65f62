"""Stage state: the small records each stage leaves, and the up-to-date decisions doit asks for.

Deliberately light: the standard library, :mod:`envbuild.project` and :mod:`envbuild.fs`
only, so loading the task graph and deciding "nothing to do" never imports conda-lock,
pydantic or py-rattler, never parses a lockfile through a model and never solves. Records:

* the completion marker of a build, ``envs/.builds/<name>/<build id>.json`` (:class:`BuildInfo`);
* ``build/state/<name>.lock.json``: the sha256 of every file the lock's fingerprint was computed
  from (recipe chain, ``envbuild.toml``), the fingerprint and the lockfile's sha256. When all
  still match, the lock is fresh without loading a recipe; when one differs (a comment was
  added, say), the full fingerprint is compared (doit's ``config_changed`` idea, with a cheap
  first look);
* ``build/state/<name>.{build,smoke,docker,image}.json`` and ``reports/<name>.verify.json``,
  each naming the build id it is about;
* per build, beside its marker: ``<build id>.smoke.json``, ``<build id>.pack.json`` and
  ``<build id>.image.json``, the records a promotion or rollback makes current together with
  the build. Smoke, pack and docker records also keep the fingerprint of their inputs
  (:mod:`envbuild.stage_inputs`): a stage is current only for the same build *and* inputs;
* ``build/state/<name>.promotion.json``: the journal of a promotion or rollback in progress
  (see :mod:`envbuild.promotion`); while it exists, the build is not up to date.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envbuild import stage_inputs
from envbuild.fs import atomic_write, file_sha256
from envbuild.project import CONFIG_FILE, Project, load_project

TEMPLATE = "Dockerfile.j2"
BUILDS_DIR = ".builds"


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """The completion marker of a build, ``envs/.builds/<name>/<build id>.json``.

    Kept outside the prefix so that conda-pack and conda-meta readers never see it."""

    recipe: str
    build_id: str
    platform: str
    lock_sha256: str
    fingerprint: str
    packages: int
    seconds: float
    prefix: str = ""  # the absolute path the packages were installed for

    def to_json(self) -> str:
        return json.dumps({k: getattr(self, k) for k in self.__slots__}, indent=2)


def marker_path(prefix: Path) -> Path:
    """The completion marker of the build at ``prefix`` (symlinks resolved)."""
    real = prefix.resolve()
    return real.with_name(real.name + ".json")


def read_marker(prefix: Path) -> BuildInfo | None:
    """The completion marker of the environment at ``prefix``, or None if absent/invalid."""
    try:
        data = json.loads(marker_path(prefix).read_text())
        return BuildInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def project_at(root: Path) -> Project:
    """:func:`load_project` once per process for an unchanged ``envbuild.toml`` (every task's
    up-to-date check asks for it)."""
    cfg = root / CONFIG_FILE
    try:
        st = cfg.stat()
        key = (st.st_mtime_ns, st.st_size)
    except OSError:
        key = (0, -1)
    return _cached_project(str(root), key)


@functools.lru_cache(maxsize=8)
def _cached_project(root: str, _key: tuple[int, int]) -> Project:
    return load_project(Path(root))


def builds_root(project: Project, name: str) -> Path:
    """``envs/.builds/<name>``: the build directories of ``name``, with their markers."""
    return project.path("envs") / BUILDS_DIR / name


def build_record(project: Project, name: str, build_id: str, kind: str) -> Path:
    """``envs/.builds/<name>/<build id>.<kind>.json`` (``kind``: smoke, image): a stage's
    record of one build, kept (and removed) with that build."""
    return builds_root(project, name) / f"{build_id}.{kind}.json"


def state_file(project: Project, name: str, kind: str) -> Path:
    """``build/state/<name>.<kind>.json``: one stage's record of environment ``name``."""
    return project.path("state") / f"{name}.{kind}.json"


def promotion_journal(project: Project, name: str) -> Path:
    return state_file(project, name, "promotion")


def candidate_dir(project: Project, name: str) -> Path:
    """``build/state/candidate/<name>``: a nightly candidate's record and staged context."""
    return project.path("state") / "candidate" / name


def docker_state(project: Project, name: str) -> Path:
    return state_file(project, name, "docker")


def image_state(project: Project, name: str) -> Path:
    return state_file(project, name, "image")


def build_state(project: Project, name: str) -> Path:
    return state_file(project, name, "build")


def smoke_state(project: Project, name: str) -> Path:
    return state_file(project, name, "smoke")


def pack_state(project: Project, name: str) -> Path:
    """``build/state/<name>.pack.json``: the last tarball's sha256 beside its lock's, and every
    tarball sha256 packed so far per (lock sha256, format, level) (see stages.pack)."""
    return state_file(project, name, "pack")


def nightly_result(project: Project, name: str) -> Path:
    """``build/state/nightly/<name>.result.json``: the last nightly's outcome for ``name``."""
    return project.path("state") / "nightly" / f"{name}.result.json"


def lock_stamp(project: Project, name: str) -> Path:
    return state_file(project, name, "lock")


def verify_report(project: Project, name: str) -> Path:
    return project.path("reports") / f"{name}.verify.json"


def _sources(project: Project, files: tuple[Path, ...]) -> dict[str, str]:
    return stage_inputs.sources(project, files)


def write_lock_stamp(
    project: Project, name: str, recipe_files: tuple[Path, ...], fingerprint: str
) -> None:
    """Record what lockfile ``name`` was made from: the sha256 of ``recipe_files`` (the recipe
    and its ``extends`` parents) and of ``envbuild.toml``, the fingerprint, the lockfile's
    sha256."""
    stamp = {
        "sources": _sources(project, recipe_files),
        "fingerprint": fingerprint,
        "lockfile_sha256": file_sha256(project.lockfile(name)),
    }
    atomic_write(lock_stamp(project, name), json.dumps(stamp, indent=2, sort_keys=True))


def lock_is_fresh(root: Path, name: str) -> bool:
    """True if ``locks/<name>.conda-lock.yml`` was made from the recipe as it is now.

    Fast path: the stamp's lockfile and source hashes all match (no recipe or lockfile
    parsing). Otherwise the recipe's fingerprint is computed and compared with the one in the
    lockfile, read with a plain YAML parser; a fresh lock then gets its stamp, so a lockfile
    that came from version control costs the slow path once. Never solves."""
    project = project_at(root)
    lockfile = project.lockfile(name)
    stamp = read_json(lock_stamp(project, name)) or {}
    try:
        lock_sha = file_sha256(lockfile)
    except OSError:
        return False
    sources = stamp.get("sources") or {}
    if stamp.get("lockfile_sha256") == lock_sha and sources:
        current = _sources(project, tuple(project.root / p for p in sources if p != CONFIG_FILE))
        if current == sources:
            return True
    # the slow path: recipe parsing and normalising (py-rattler's match spec parser)
    from envbuild.fingerprint import fingerprint
    from envbuild.lockfile import locked_fingerprint
    from envbuild.recipe import load_recipe

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
    state = read_json(build_state(project, name))
    if state is None or state.get("build_id") != info.build_id:
        return False
    report = read_json(verify_report(project, name))
    return not (
        report and report.get("build_id") == info.build_id and report.get("status") != "clean"
    )


def current_build_id(project: Project, name: str) -> str | None:
    info = read_marker(project.env_prefix(name))
    return info.build_id if info else None


def smoke_is_current(root: Path, name: str) -> bool:
    """True if the current build passed its smoke checks as the recipe states them now
    (imports, commands, variables, kernel options) and its kernelspec is still there."""
    project = project_at(root)
    report = read_json(smoke_state(project, name)) or {}
    current = current_build_id(project, name)
    if current is None or report.get("build_id") != current or report.get("status") != "passed":
        return False
    kernel = report.get("kernel_spec")
    if kernel and not Path(kernel).is_file():
        return False
    return stage_inputs.unchanged(project, name, "smoke", report, smoke_state(project, name))


def pack_record(project: Project, name: str, build_id: str) -> Path:
    """``envs/.builds/<name>/<build id>.pack.json``: how that build was packed (format,
    inputs), kept with the build so that a rollback to it finds its tarball current."""
    return build_record(project, name, build_id, "pack")


def pack_is_current(root: Path, name: str) -> bool:
    """True if ``dist/<name>-<platform>.<fmt>`` is the tarball kept for the current build
    (``dist/history/<name>/<build id>.<fmt>``, the same file), packed from the recipe's pack
    options as they are now, after the build passed its smoke checks."""
    project = project_at(root)
    info = read_marker(project.env_prefix(name))
    if info is None:
        return False
    record = read_json(pack_record(project, name, info.build_id)) or {}
    fmt = str(record.get("format", ""))
    if fmt not in ("tar.zst", "tar.gz"):
        return False
    kept = project.path("dist") / "history" / name / f"{info.build_id}.{fmt}"
    tarball = project.path("dist") / f"{name}-{info.platform}.{fmt}"
    try:
        if not os.path.samefile(tarball, kept):
            return False
    except OSError:
        return False
    smoke = read_json(smoke_state(project, name)) or {}
    if smoke.get("build_id") != info.build_id or smoke.get("status") != "passed":
        return False
    return stage_inputs.unchanged(
        project, name, "pack", record, pack_record(project, name, info.build_id)
    )


def current_tarball(project: Project, name: str) -> Path | None:
    """The current build's published tarball as its pack record names it, or None."""
    info = read_marker(project.env_prefix(name))
    record = read_json(pack_record(project, name, info.build_id)) if info else None
    if info is None or record is None or record.get("format") not in ("tar.zst", "tar.gz"):
        return None
    return project.path("dist") / f"{name}-{info.platform}.{record['format']}"


def template_sha(project: Project) -> str:
    """sha256 of the Dockerfile template in effect (the project's, else envbuild's)."""
    from envbuild.templates import find

    return file_sha256(find(project.path("templates"), TEMPLATE))


@functools.lru_cache(maxsize=1)
def engine_available() -> bool:
    """Whether a Docker engine answers, asked once per process (not once per environment)."""
    from envbuild import image

    return image.engine_available()


def docker_is_current(root: Path, name: str) -> bool:
    """True if docker/<name>/ was rendered for the current build and tarball from the current
    template and the recipe's docker inputs as they are now (base image, user, uid, prefix,
    smoke checks, variables) and, when an engine is reachable, its image was built from it."""
    project = project_at(root)
    current = current_build_id(project, name)
    rendered = read_json(docker_state(project, name)) or {}
    if current is None or not (project.path("docker") / name / "Dockerfile").exists():
        return False
    tarball = current_tarball(project, name)
    if (
        rendered.get("build_id") != current
        or rendered.get("template_sha256") != template_sha(project)
        or tarball is None
        or rendered.get("tarball") != stage_inputs.file_identity(tarball)
    ):
        return False
    if not stage_inputs.unchanged(project, name, "docker", rendered, docker_state(project, name)):
        return False
    image = read_json(image_state(project, name)) or {}
    if project.image_base:  # the written image: of this build, on this base, checked if it can be
        return _written_image_is_current(project, image, current)
    if not engine_available():
        return True
    return image.get("build_id") == current and image.get("inputs") == rendered.get("inputs")


def _written_image_is_current(project: Project, image: dict[str, Any], build_id: str) -> bool:
    from envbuild.base_image import manifest_digest, parse
    from envbuild.errors import EnvBuildError

    archive = project.root / str(image.get("archive") or "-")
    if image.get("build_id") != build_id or not archive.is_file():
        return False
    try:
        arch = str(image.get("architecture") or "amd64")
        base = manifest_digest(Path(parse(project.image_base)[0]), arch)
    except EnvBuildError:
        return False  # a malformed [image] base: the stage says what is wrong
    if image.get("base") != base:
        return False  # the base changed (or is gone): the stage says which
    return image.get("smoke") == "passed" or not engine_available()
