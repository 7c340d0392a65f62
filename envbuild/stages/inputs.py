"""What a stage is made from, as a fingerprint its record keeps.

A stage is up to date only if the build it ran for is current *and* every input it read is
what it was (make's promise). Each stage declares the recipe keys it reads as its ``inputs``
(a function of the recipe, over :func:`digest`) in its own module: ``stages/smoke.py``,
``stages/pack.py``, ``stages/docker.py``.

A record keeps the fingerprint and the sha256 of each file it was computed from (the recipe
chain, ``envbuild.toml``). Deciding "nothing to do" hashes those few small files only; if one
changed (a comment, say), the recipe is loaded and the fingerprint compared (doit's
``config_changed`` idea with a cheap first look, as the lock's stamp does), and an equal one
refreshes the record. Light: the standard library, :mod:`envbuild.util.fs`,
:mod:`envbuild.project` and the registry only at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envbuild.project import CONFIG_FILE
from envbuild.records import DockerRecord, PackRecord, SmokeRecord, StageStamp
from envbuild.stages import registry
from envbuild.util.fs import file_sha256

if TYPE_CHECKING:
    from envbuild.project import Project
    from envbuild.recipe.model import Recipe

# Bump when the meaning of a stage's inputs changes: every record is then out of date once.
STAGE_SCHEMA = 1


def digest(kind: str, data: dict[str, Any]) -> str:
    """sha256 hex of ``data`` (JSON values), the stage ``kind`` and :data:`STAGE_SCHEMA`: a
    stage's ``inputs`` fingerprint is this over the recipe keys it reads."""
    text = json.dumps({"schema": STAGE_SCHEMA, "stage": kind, **data}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(kind: str, recipe: Recipe) -> str:
    """The ``inputs`` fingerprint of stage ``kind`` for ``recipe`` (KeyError: no such stage,
    or one without inputs)."""
    inputs = registry.get(kind).inputs
    if inputs is None:
        msg = f"stage {kind!r} declares no inputs"
        raise KeyError(msg)
    return inputs(recipe)


def sources(project: Project, files: tuple[Path, ...]) -> dict[str, str]:
    """relative path -> sha256 of ``files`` and ``envbuild.toml`` ("" if unreadable)."""
    out = {}
    for f in (*files, project.root / CONFIG_FILE):
        rel = os.path.relpath(f, project.root)
        try:
            out[rel] = file_sha256(f)
        except OSError:
            out[rel] = ""
    return out


def stamp(project: Project, recipe: Recipe, kind: str) -> StageStamp:
    """The fields a ``kind`` record adds: ``inputs`` (the fingerprint) and ``sources``."""
    return StageStamp(inputs=fingerprint(kind, recipe), sources=sources(project, recipe.sources))


def file_identity(path: Path) -> str:
    """``size:mtime_ns`` of ``path`` ("" if absent): a replaced tarball is a new input."""
    try:
        st = path.stat()
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def unchanged(
    project: Project,
    name: str,
    kind: str,
    record: SmokeRecord | PackRecord | DockerRecord,
    path: Path | None,
) -> bool:
    """True if ``record`` (a ``kind`` record of recipe ``name``) was made from the inputs as
    they are now. Fast path: the recorded source files all hash the same. Otherwise the
    recipe is loaded (py-rattler's spec parser) and its fingerprint compared; an equal one
    is written back to ``path`` (if given) with the new source hashes, so the next check
    takes the fast path again. A recipe that no longer loads is not up to date (the stage
    then reports the error)."""
    digest, recorded = record.inputs, record.sources
    if not digest or not recorded:
        return False
    files = tuple(project.root / p for p in recorded if p != CONFIG_FILE)
    if sources(project, files) == recorded:
        return True
    from envbuild.errors import EnvBuildError
    from envbuild.recipe.load import load_recipe

    try:
        recipe = load_recipe(project.recipe_file(name), project.platforms)
    except EnvBuildError:
        return False
    if fingerprint(kind, recipe) != digest:
        return False
    if path is not None:
        record.replaced(sources=sources(project, recipe.sources)).save(path)
    return True
