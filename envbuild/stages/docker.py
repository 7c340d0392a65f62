"""The docker stage: render ``docker/<name>/`` (Dockerfile and build context) and, with
``[image] base``, write the OCI image archive without an engine; or build the image with one.

Inputs (its fingerprint): the name, ``docker`` (base image, user, uid, prefix), ``smoke`` (the
image runs the checks) and ``variables``; the template's sha256 and the tarball's size and
mtime are recorded beside it (files, not recipe keys). Records:
``build/state/<name>.docker.json`` (what the context was rendered from) and
``build/state/<name>.image.json`` (the image, also kept with the build).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from envbuild.errors import DockerError, EnvBuildError
from envbuild.layout import (
    TEMPLATE,
    build_record,
    current_build_id,
    current_tarball,
    docker_state,
    image_state,
    project_at,
)
from envbuild.project import Project
from envbuild.records import PASSED, DockerRecord, ImageRecord
from envbuild.stages import inputs
from envbuild.stages.registry import Stage, register
from envbuild.util.fs import file_sha256

if TYPE_CHECKING:
    from envbuild.recipe.model import Recipe

log = logging.getLogger("envbuild")


def docker_digest(recipe: Recipe) -> str:
    """Fingerprint of the docker stage's recipe inputs (template and tarball are recorded
    beside it: they are files, not recipe keys)."""
    d = recipe.docker
    return inputs.digest(
        "docker",
        {
            "name": recipe.name,
            "docker": [d.base_image, d.user, d.uid, d.prefix],
            "imports": list(recipe.smoke.imports),
            "commands": list(recipe.smoke.commands),
            "variables": [list(v) for v in recipe.variables],
        },
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


def dockerfile(project: Project, name: str) -> Path:
    """``docker/<name>/Dockerfile``, the stage's doit target."""
    return project.path("docker") / name / "Dockerfile"


def docker_is_current(root: Path, name: str) -> bool:
    """True if docker/<name>/ was rendered for the current build and tarball from the current
    template and the recipe's docker inputs as they are now (base image, user, uid, prefix,
    smoke checks, variables) and, when an engine is reachable, its image was built from it."""
    project = project_at(root)
    current = current_build_id(project, name)
    rendered = DockerRecord.peek(docker_state(project, name))
    if current is None or not dockerfile(project, name).exists():
        return False
    tarball = current_tarball(project, name)
    if (
        rendered is None
        or rendered.build_id != current
        or rendered.template_sha256 != template_sha(project)
        or tarball is None
        or rendered.tarball != inputs.file_identity(tarball)
    ):
        return False
    if not inputs.unchanged(project, name, "docker", rendered, docker_state(project, name)):
        return False
    image = ImageRecord.peek(image_state(project, name))
    if project.image_base:  # the written image: of this build, on this base, checked if it can be
        return image is not None and _written_image_is_current(project, image, current)
    if not engine_available():
        return True
    return image is not None and image.build_id == current and image.inputs == rendered.inputs


def _written_image_is_current(project: Project, image: ImageRecord, build_id: str) -> bool:
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


def docker(project: Project, recipe: Recipe, name: str) -> None:
    """Render docker/<name>/; with ``[image] base``, write the image archive and SBOM (no
    engine needed) and, when an engine is reachable, load it and run the smoke checks inside;
    without a base, build the Dockerfile with the engine. Without an engine, say so and
    succeed. EnvBuildError if the current build has no current tarball."""
    from envbuild.recipe.validate import display
    from envbuild.ship import docker as docker_mod
    from envbuild.ship import engine as image_mod
    from envbuild.stages.build import current_build
    from envbuild.stages.pack import pack_is_current, tarball

    info = current_build(project, name)
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
    stamp = inputs.stamp(project, recipe, "docker")
    rendered = DockerRecord(
        build_id=info.build_id,
        template_sha256=template_sha(project),
        tarball=inputs.file_identity(tb),
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


STAGE = register(
    Stage(
        name="docker",
        doc="render docker/<name>/Dockerfile and its build context (and image, with an engine)",
        run=docker,
        after=("pack:{name}",),
        target=dockerfile,
        record=docker_state,
        record_type=DockerRecord,
        inputs=docker_digest,
        is_current=docker_is_current,
        hold=("five",),
        clean=True,
        column=False,
    )
)
