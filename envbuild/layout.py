"""Where every build, marker and stage record of a project lives, and how to read them.

Standard library and :mod:`envbuild.project` only, so every layer can name these paths
(installing, packing, promoting, deciding what is up to date) without importing the others.
Records, each a class of :mod:`envbuild.records` (what it holds, how it is read and written):

* the completion marker of a build, ``envs/.builds/<name>/<build id>.json`` (:class:`BuildInfo`);
* ``build/state/<name>.lock.json``: the stamp of what the lockfile was made from
  (:mod:`envbuild.stages.lock`);
* ``build/state/<name>.{build,smoke,pack,docker,image}.json`` and ``reports/<name>.verify.json``,
  each naming the build id it is about;
* per build, beside its marker: ``<build id>.smoke.json``, ``<build id>.pack.json`` and
  ``<build id>.image.json``, the records a promotion or rollback makes current together with
  the build;
* ``build/state/<name>.promotion.json``: the journal of a promotion or rollback in progress
  (see :mod:`envbuild.ops.promotion`);
* ``build/state/candidate/<name>/candidate.json``: a nightly's candidate;
* ``build/state/<name>.publish.json`` and ``<build id>.publish.json``: what was published;
* ``build/state/nightly/<name>.result.json``: the last nightly's outcome.
"""

from __future__ import annotations

import functools
from pathlib import Path

from envbuild.project import CONFIG_FILE, Project, load_project
from envbuild.records import BuildInfo, PackRecord

TEMPLATE = "Dockerfile.j2"
BUILDS_DIR = ".builds"


def marker_path(prefix: Path) -> Path:
    """The completion marker of the build at ``prefix`` (symlinks resolved)."""
    real = prefix.resolve()
    return real.with_name(real.name + ".json")


def read_marker(prefix: Path) -> BuildInfo | None:
    """The completion marker of the environment at ``prefix``, or None if absent or damaged
    (an incomplete build: see :meth:`envbuild.records.Record.peek`)."""
    try:
        return BuildInfo.peek(marker_path(prefix))
    except OSError:  # resolving the path: a symlink loop, say
        return None


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
    tarball sha256 packed so far per (lock sha256, format, level) (:mod:`envbuild.stages.pack`)."""
    return state_file(project, name, "pack")


def nightly_result(project: Project, name: str) -> Path:
    """``build/state/nightly/<name>.result.json``: the last nightly's outcome for ``name``."""
    return project.path("state") / "nightly" / f"{name}.result.json"


def lock_stamp(project: Project, name: str) -> Path:
    return state_file(project, name, "lock")


def verify_report(project: Project, name: str) -> Path:
    return project.path("reports") / f"{name}.verify.json"


def current_build_id(project: Project, name: str) -> str | None:
    info = read_marker(project.env_prefix(name))
    return info.build_id if info else None


def pack_record(project: Project, name: str, build_id: str) -> Path:
    """``envs/.builds/<name>/<build id>.pack.json``: how that build was packed (format,
    inputs), kept with the build so that a rollback to it finds its tarball current."""
    return build_record(project, name, build_id, "pack")


def current_tarball(project: Project, name: str) -> Path | None:
    """The current build's published tarball as its pack record names it, or None."""
    info = read_marker(project.env_prefix(name))
    record = PackRecord.peek(pack_record(project, name, info.build_id)) if info else None
    if info is None or record is None or not record.has_tarball_format:
        return None
    return project.path("dist") / f"{name}-{info.platform}.{record.format}"


def lock_copy(prefix: Path) -> Path:
    """The copy of the lockfile a build was made from, beside it (for rollback)."""
    real = prefix.resolve()
    return real.with_name(real.name + ".conda-lock.yml")
