"""The docker stage's engine-free half: the SBOM, the image archive, and (with an engine) the
image loaded and smoke-tested inside as the non-root user.

Called by :func:`envbuild.stages.docker.docker` when ``[image] base`` is set; without it the stage
keeps building the rendered Dockerfile with a local engine. Records
``build/state/<name>.image.json`` (and the build's copy): manifest digest, archive, base
digest, whether the in-container checks ran.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from envbuild.errors import ImageError
from envbuild.layout import build_record, image_state
from envbuild.lock.epoch import lock_epoch
from envbuild.project import Project
from envbuild.recipe.model import Recipe
from envbuild.recipe.validate import display
from envbuild.records import PASSED, BuildInfo, ImageRecord, PackRecord
from envbuild.ship import engine as image_mod
from envbuild.ship.base_image import local_base
from envbuild.ship.engine import engine_available
from envbuild.ship.oci_image import (
    ANN_ENV_DIGEST,
    ANN_ENV_SIZE,
    ANN_ENV_UNPACKED,
    ANN_SBOM_DIGEST,
    ARCHITECTURES,
    ImageSpec,
    image_path,
    write_image,
)
from envbuild.ship.sbom import SBOM_IN_PREFIX, write_sbom
from envbuild.util import proc
from envbuild.util.fs import atomic_link
from envbuild.util.reference import is_registry_ref

log = logging.getLogger("envbuild")
NOT_RUN = "not run (no engine reachable)"


def kept_image(project: Project, name: str, build_id: str) -> Path:
    """``dist/history/<name>/<build id>.oci.tar``: the image archive kept with one build
    (promotion and rollback publish it again; gc removes it with the build)."""
    return project.path("dist") / "history" / name / f"{build_id}.oci.tar"


def environment_pins(project: Project, name: str, build_id: str, sbom: str) -> dict[str, str]:
    """The image's annotations pinning build ``build_id``'s tarball (the one kept with it,
    ``dist/history/<name>/<id>.<fmt>``, as its pack record names it: digest, bytes, unpacked
    bytes) and ``sbom`` (the SBOM's text, the published file's bytes). Raises ImageError if
    the build has no tarball (the pack stage runs before the image)."""
    import hashlib

    from envbuild.layout import pack_record
    from envbuild.ship.pack import history_path, unpacked_size
    from envbuild.util.fs import file_sha256

    record = PackRecord.peek(pack_record(project, name, build_id))
    fmt = record.format if record else ""
    tarball = history_path(project.path("dist"), name, build_id, fmt or "tar.zst")
    if record is None or not record.has_tarball_format or not tarball.is_file():
        msg = f"{name}: build {build_id} has no tarball ({display(tarball)}) for its image to "
        msg += f"pin; run `doit pack env={name}` first"
        raise ImageError(msg)
    unpacked = record.unpacked_size
    if unpacked is None or unpacked < 0:  # packed by an older envbuild
        unpacked = unpacked_size(tarball, fmt)
    return {
        ANN_ENV_DIGEST: "sha256:" + file_sha256(tarball),
        ANN_ENV_SIZE: str(tarball.stat().st_size),
        ANN_ENV_UNPACKED: str(unpacked),
        ANN_SBOM_DIGEST: "sha256:" + hashlib.sha256(sbom.encode()).hexdigest(),
    }


def spec_for(
    recipe: Recipe, info: BuildInfo, prefix: Path, source: str, sbom: str,
    pins: dict[str, str] | None = None,
) -> ImageSpec:  # fmt: skip
    from envbuild.install.build import lock_copy

    d = recipe.docker
    return ImageSpec(
        name=recipe.name, platform=info.platform, prefix="/" + d.prefix.strip("/"),
        user=d.user, uid=d.uid,
        lock_sha256=info.lock_sha256, epoch=lock_epoch(lock_copy(prefix.resolve())),
        imports=recipe.smoke.imports, variables=recipe.variables, source=source,
        extra_files=((SBOM_IN_PREFIX, sbom.encode()),), pins=tuple(sorted((pins or {}).items())),
    )  # fmt: skip


def write(
    project: Project, recipe: Recipe, info: BuildInfo, output: Path | None = None,
    prefix: Path | None = None, current: bool = True,
) -> ImageRecord:  # fmt: skip
    """Write the SBOM and the image archive of build ``info`` (at ``prefix``, default the
    current environment), kept with the build and, if ``current``, published as
    ``dist/<name>-<platform>.{oci.tar,cdx.json}`` (``output``: write the archive there
    instead, nothing else). With an engine, load it as ``envbuild/<name>:<lock 12 hex>`` and
    run the smoke checks inside. Returns the record (also kept with the build, and current if
    ``current``). The image's manifest pins the build's tarball and SBOM by digest
    (:func:`environment_pins`). Raises ImageError (base, disk, engine refusing the load, no
    tarball) or DockerError (a check failing inside)."""
    name = recipe.name
    prefix = prefix or project.env_prefix(name)
    base_path, pin = local_base(project.image_base, project.path("base_cache"))
    if info.platform not in ARCHITECTURES:
        msg = f"{name}: images are Linux images; this build is for {info.platform}"
        raise ImageError(msg)
    kept = kept_image(project, name, info.build_id)
    out = output or kept
    start = time.monotonic()
    try:
        sbom_file, sbom = write_sbom(project, name, info, prefix, current and output is None)
        pins = environment_pins(project, name, info.build_id, sbom)
        spec = spec_for(recipe, info, prefix, project.image_source, sbom, pins)
        img = write_image(prefix, spec, Path(base_path), pin, out)
    except OSError as e:
        msg = f"{display(out)}: writing the image failed: {e}; the previous image is unchanged"
        raise ImageError(msg) from None
    except ImageError as e:
        if not is_registry_ref(project.image_base):
            raise
        msg = (f"{e}\n{display(Path(base_path))} is the cached copy of [image] base "
               f"{project.image_base}: delete it and the next run fetches it again")  # fmt: skip
        raise ImageError(msg) from None
    seconds = time.monotonic() - start
    published = image_path(project.path("dist"), name, info.platform)
    if current and output is None:
        atomic_link(kept, published)
        out = published
    print(f"{name}: image {display(out)} {img.digest}")
    log.info("wrote image %s in %.1f s (%.1f MB), SBOM %s", display(out), seconds,
             img.size / 1e6, display(sbom_file))  # fmt: skip
    record = ImageRecord(
        build_id=info.build_id, lock_sha256=info.lock_sha256, digest=img.digest,
        archive=os.path.relpath(published, project.root), size=img.size,
        base=img.base_digest, architecture=spec.architecture,
        env_bytes=img.env_bytes, tag="", id="",
        smoke=NOT_RUN, seconds=round(seconds, 2),
    )  # fmt: skip
    if engine_available():
        # in the engine, the project's own tag (a shared engine holds other projects' images
        # of the same recipe); the archive itself names no project, so its digest is the same
        # in every clone
        tag = image_mod.tag_for(name, info.lock_sha256, image_mod.project_id(project.root))
        load(out, tag)
        image_mod.smoke(tag, recipe.smoke)
        loaded = image_mod.inspect(tag)
        record = record.replaced(tag=tag, id=loaded.id, smoke=PASSED)
        if current and output is None:  # a candidate's is moved by its promotion
            image_mod.retag(tag, image_mod.current_tag(name))
        log.info("loaded %s into the engine; smoke checks passed inside it as uid %d",
                 tag, spec.uid)  # fmt: skip
    else:
        log.warning("no Docker engine reachable: image written, the in-container smoke checks "
                    "did not run")  # fmt: skip
    if output is None:
        record.save(build_record(project, name, info.build_id, "image"))
    if current and output is None:
        record.save(image_state(project, name))
    return record


def load(archive: Path, tag: str) -> None:
    """Load the image archive into the local engine as ``tag``: with ``skopeo copy
    oci-archive:... docker-daemon:...`` where skopeo is installed, else ``docker load`` (which
    reads the archive's ``manifest.json``). Raises ImageError with the engine's answer."""
    if shutil.which("skopeo"):
        argv = ["skopeo", "copy", "--quiet", f"oci-archive:{archive}", f"docker-daemon:{tag}"]
    else:
        argv = ["docker", "load", "--quiet", "--input", str(archive)]
    try:
        proc.run(argv, timeout=1800)
    except proc.ProcessError as e:
        msg = f"the engine refused the image {display(archive)} as {tag}:\n{e}"
        raise ImageError(msg) from None
