"""The pack stage: conda-pack the current build into ``dist/<name>-<platform>.<fmt>``.

Inputs (its fingerprint): ``pack.format``, ``pack.level``, ``smoke.imports`` (the tarball's
proof imports them) and ``variables`` (its activation scripts); the build and its passed smoke
checks are checked beside them. Records: ``envs/.builds/<name>/<build id>.pack.json`` (how that
build was packed, kept with it so a rollback finds its tarball current) and
``build/state/<name>.pack.json`` (the tarball's sha256 beside its lock's, and every sha256
packed so far per lock, format and level: README, "Reproducible artifacts"). No doit target:
the tarball's name depends on the recipe's pack format, and loading the graph never parses
recipes (:func:`pack_is_current` checks the tarball itself).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from envbuild.errors import PackError, RecipeError
from envbuild.layout import (
    pack_record,
    pack_state,
    project_at,
    read_marker,
    smoke_state,
)
from envbuild.project import Project
from envbuild.records import PackRecord, PackState, SmokeRecord
from envbuild.stages import inputs
from envbuild.stages.registry import Stage, register

if TYPE_CHECKING:
    from envbuild.recipe.model import Recipe

log = logging.getLogger("envbuild")


def pack_digest(recipe: Recipe) -> str:
    """Fingerprint of the pack stage's inputs."""
    return inputs.digest(
        "pack",
        {
            "format": recipe.pack.format,
            "level": recipe.pack.level,
            "imports": list(recipe.smoke.imports),
            "variables": [list(v) for v in recipe.variables],
        },
    )


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
    return inputs.unchanged(
        project, name, "pack", record, pack_record(project, name, info.build_id)
    )


def tarball(project: Project, name: str) -> Path:
    """``dist/<name>-<this platform>.<format>`` (format from the recipe, tar.zst if unreadable)."""
    from envbuild.recipe.load import load_recipe
    from envbuild.recipe.model import current_subdir
    from envbuild.ship import pack as pack_mod

    try:
        fmt = load_recipe(project.recipe_file(name), project.platforms).pack.format
    except RecipeError:
        fmt = "tar.zst"
    return pack_mod.tarball_path(project.path("dist"), name, current_subdir(), fmt)


def history_tarball(project: Project, name: str, build_id: str) -> Path:
    """Where the tarball of one build is kept for rollback: dist/history/<name>/<id>.<fmt>."""
    from envbuild.ship import pack as pack_mod

    current = tarball(project, name)
    fmt = current.name.split(".", 1)[1]
    return pack_mod.history_path(project.path("dist"), name, build_id, fmt)


def pack(project: Project, recipe: Recipe, name: str) -> None:
    """Pack the current build into dist/ (and keep it for rollback), with its SBOM inside;
    PackError if it has not passed its smoke checks."""
    from envbuild.lock.epoch import lock_epoch
    from envbuild.ship import pack as pack_mod
    from envbuild.ship.sbom import SBOM_IN_PREFIX, write_sbom
    from envbuild.stages.build import current_build
    from envbuild.util.fs import atomic_link

    info = current_build(project, name)
    passed = SmokeRecord.peek(smoke_state(project, name))
    if passed is None or not passed.passed_for(info.build_id):
        msg = (
            f"environment '{name}' has not passed its smoke checks (build {info.build_id}); "
            f"run `doit smoke env={name}`"
        )
        raise PackError(msg)
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
    stamp = inputs.stamp(project, recipe, "pack")
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
    from envbuild.recipe.validate import display
    from envbuild.util.fs import file_sha256

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


STAGE = register(
    Stage(
        name="pack",
        doc="conda-pack each environment into dist/ and prove the tarball",
        run=pack,
        after=("smoke:{name}",),
        record=pack_state,
        record_type=PackState,
        inputs=pack_digest,
        is_current=pack_is_current,
        hold=("five",),
        clean=True,
        column=False,
    )
)
