"""Docker stage: render ``Dockerfile.j2`` (the project's ``templates/`` or envbuild's) and
its build context into ``docker/<name>/``.

The context holds ``Dockerfile`` and ``env.tar``, the packed environment as a plain tar (Docker's
``ADD`` unpacks identity/gzip/bzip2/xz tars but not zstd:
https://docs.docker.com/reference/dockerfile/#add). The image runs ``conda-unpack`` with the
environment's own interpreter, then switches to a non-root user with the prefix first on PATH.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from envbuild.errors import DockerError
from envbuild.layout import TEMPLATE  # named there: the up-to-date check hashes it
from envbuild.recipe.model import Recipe
from envbuild.recipe.validate import display
from envbuild.ship.pack import open_tar_stream
from envbuild.util import templates
from envbuild.util.fs import atomic_write, clean_temporaries, staged_file

CONTEXT_ARCHIVE = "env.tar"


@dataclass(frozen=True, slots=True)
class DockerContext:
    """Template variables. ``prefix``: install path in the image; ``archive``: file in the
    build context; ``lock_sha256``/``build_id``: provenance labels."""

    name: str
    base_image: str
    user: str
    uid: int
    prefix: str
    archive: str
    lock_sha256: str
    build_id: str
    imports: tuple[str, ...]
    variables: tuple[tuple[str, str], ...] = ()  # (name, value quoted for a Dockerfile ENV)
    project_id: str = ""  # image.project_id: labels the unpack stage, which is pruned by it


def context_for(
    recipe: Recipe, lock_sha256: str, build_id: str, project_id: str = ""
) -> DockerContext:
    """The template variables for ``recipe`` (pure)."""
    d = recipe.docker
    return DockerContext(
        recipe.name,
        d.base_image,
        d.user,
        d.uid,
        d.prefix,
        CONTEXT_ARCHIVE,
        lock_sha256,
        build_id,
        recipe.smoke.imports,
        tuple((k, _quoted(v)) for k, v in recipe.variables),
        project_id,
    )


def _quoted(value: str) -> str:
    """``value`` as a double-quoted Dockerfile string (``ENV NAME="value"``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def render(template_dir: Path, ctx: DockerContext) -> str:
    """Render ``Dockerfile.j2`` with ``ctx``: the project's ``<template_dir>/Dockerfile.j2`` if
    it has one, else envbuild's (:mod:`envbuild.util.templates`). Raises DockerError if the
    template is invalid or uses an undefined variable."""
    import jinja2  # ~16 ms: only when a Dockerfile is rendered, not for every stage

    used = templates.find(template_dir, TEMPLATE)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates.search_path(template_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    try:
        return env.get_template(TEMPLATE).render(**asdict(ctx))
    except jinja2.TemplateError as e:
        lineno = getattr(e, "lineno", None)
        at = f":{lineno}" if lineno else ""
        msg = f"{display(used)}{at}: {type(e).__name__}: {e}"
        raise DockerError(msg) from None


def write_context(tarball: Path, out_dir: Path, dockerfile: str) -> Path:
    """Write ``out_dir/env.tar`` (the tarball decompressed) then ``out_dir/Dockerfile``, each
    atomically; returns the Dockerfile path."""
    for artifact in (out_dir / CONTEXT_ARCHIVE, out_dir / "Dockerfile"):
        clean_temporaries(artifact)  # of a run that was killed
    with staged_file(out_dir / CONTEXT_ARCHIVE) as tmp:
        with open_tar_stream(tarball) as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp.chmod(0o644)
    path = out_dir / "Dockerfile"
    atomic_write(path, dockerfile)
    return path
