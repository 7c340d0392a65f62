"""What each stage after the build is made from, as a fingerprint its record keeps.

A stage is up to date only if the build it ran for is current *and* every input it read is
what it was (make's promise). Inputs per stage, all from the recipe (its whole ``extends``
chain) except where said:

* smoke: ``smoke.imports``, ``smoke.commands``, ``variables`` and the Jupyter kernel options
  (the smoke stage registers the kernel); the build is its record's ``build_id``;
* pack: ``pack.format``, ``pack.level``, ``smoke.imports`` (the tarball's proof imports them),
  ``variables`` (its activation scripts); the build and its passed smoke checks are checked
  beside it;
* docker: the name, ``docker`` (base image, user, uid, prefix), ``smoke`` (the image runs
  the checks), ``variables``; the template's sha256 and the tarball's size and mtime are
  recorded beside it.

A record keeps the fingerprint and the sha256 of each file it was computed from (the recipe
chain, ``envbuild.toml``). Deciding "nothing to do" hashes those few small files only; if one
changed (a comment, say), the recipe is loaded and the fingerprint compared (doit's
``config_changed`` idea with a cheap first look, as the lock's stamp does), and an equal one
refreshes the record. Light: the standard library, :mod:`envbuild.util.fs` and
:mod:`envbuild.project` only at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envbuild.project import CONFIG_FILE
from envbuild.records import DockerRecord, PackRecord, SmokeRecord, StageStamp
from envbuild.util.fs import file_sha256

if TYPE_CHECKING:
    from envbuild.project import Project
    from envbuild.recipe.model import Recipe

# Bump when the meaning of a stage's inputs changes: every record is then out of date once.
STAGE_SCHEMA = 1


def _digest(kind: str, data: dict[str, Any]) -> str:
    text = json.dumps({"schema": STAGE_SCHEMA, "stage": kind, **data}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def smoke_digest(recipe: Recipe) -> str:
    """Fingerprint of the smoke stage's inputs (see the module docstring)."""
    return _digest(
        "smoke",
        {
            "imports": list(recipe.smoke.imports),
            "commands": list(recipe.smoke.commands),
            "variables": [list(v) for v in recipe.variables],
            # the display name matters only when a kernel is registered
            "kernel": recipe.jupyter.kernel and [recipe.jupyter.display_name],
        },
    )


def pack_digest(recipe: Recipe) -> str:
    """Fingerprint of the pack stage's inputs."""
    return _digest(
        "pack",
        {
            "format": recipe.pack.format,
            "level": recipe.pack.level,
            "imports": list(recipe.smoke.imports),
            "variables": [list(v) for v in recipe.variables],
        },
    )


def docker_digest(recipe: Recipe) -> str:
    """Fingerprint of the docker stage's recipe inputs (template and tarball are recorded
    beside it: they are files, not recipe keys)."""
    d = recipe.docker
    return _digest(
        "docker",
        {
            "name": recipe.name,
            "docker": [d.base_image, d.user, d.uid, d.prefix],
            "imports": list(recipe.smoke.imports),
            "commands": list(recipe.smoke.commands),
            "variables": [list(v) for v in recipe.variables],
        },
    )


DIGESTS: dict[str, Callable[[Recipe], str]] = {
    "smoke": smoke_digest,
    "pack": pack_digest,
    "docker": docker_digest,
}


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
    return StageStamp(inputs=DIGESTS[kind](recipe), sources=sources(project, recipe.sources))


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
    if DIGESTS[kind](recipe) != digest:
        return False
    if path is not None:
        record.replaced(sources=sources(project, recipe.sources)).save(path)
    return True
