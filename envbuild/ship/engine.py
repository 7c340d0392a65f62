"""Container images: build the rendered Docker context with a local engine, run smoke checks
inside as the non-root user, list and remove envbuild's images.

Talks to the engine through the ``docker`` CLI (legacy builder, ``DOCKER_BUILDKIT=0``, which
needs no BuildKit client) with ``--network none``: the image is built from the context alone.
Images are tagged ``envbuild/<name>:<first 12 hex of the lockfile sha256>-<first 8 of the
project id>`` and labelled with the recipe, lock sha256, build id and project
(:func:`project_id`: two projects with a recipe of one name share an engine without sharing
these tags; ``envbuild/<name>:current`` is the published name and stays one per name) (https://docs.docker.com/reference/cli/docker/image/build/).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from envbuild.errors import DockerError
from envbuild.recipe.model import Smoke
from envbuild.util import proc

LABEL_RECIPE = "org.envbuild.recipe"
LABEL_LOCK = "org.envbuild.lock-sha256"
LABEL_STAGE = "org.envbuild.stage"
# The unpack stage's value. Not "unpack": envbuild before issue 20 pruned every dangling image
# labelled stage=unpack engine-wide, which deleted other builds' stages mid-build ("unknown
# parent image ID"); such versions may still share the engine, and never match this value.
STAGE_UNPACK = "unpack-of-build"
LABEL_BUILD = "org.envbuild.build-id"
LABEL_PROJECT = "org.envbuild.project"


def project_id(root: Path) -> str:
    """The project identity every image of the project at ``root`` is labelled with
    (:data:`LABEL_PROJECT`): 16 hex of the sha256 of its canonical path (symlinks resolved).

    A path and not an id written into ``envbuild.toml``: two clones of one repository on
    one engine (CI runners, a team's build host) share their envbuild.toml but must never
    remove, untag or prune each other's images; the cost is that a moved project sees its
    old images as foreign (left alone, never deleted: `docker rmi` them by hand)."""
    return hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Image:
    """A built image: ``tag``, engine ``id``, ``size`` in bytes, ``build_id`` label."""

    tag: str
    id: str
    size: int
    build_id: str
    project: str = ""


def _env() -> dict[str, str]:
    return {**os.environ, "DOCKER_BUILDKIT": "0"}


def engine_available(timeout: float = 10) -> bool:
    """True if a Docker engine answers ``docker version`` within ``timeout`` seconds."""
    try:
        r = proc.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            check=False,
            timeout=timeout,
            env=_env(),
        )
    except proc.ProcessError:
        return False
    return r.returncode == 0 and bool(r.stdout.strip())


def tag_for(name: str, lock_sha256: str, project: str) -> str:
    """``envbuild/<name>:<12 hex of the lock sha256>-<8 of the project id>``."""
    return f"envbuild/{name}:{lock_sha256[:12]}-{project[:8]}"


def current_tag(name: str) -> str:
    """``envbuild/<name>:current``: the tag that follows the current build."""
    return f"envbuild/{name}:current"


def build(
    context: Path, name: str, lock_sha256: str, build_id: str, project: str, current: bool = True
) -> Image:
    """``docker build`` the context, tagged :func:`tag_for` and, if ``current``, also
    :func:`current_tag` (a candidate is tagged current only when it is promoted), labelled
    with ``project`` (:func:`project_id`). Returns the image. Raises DockerError with the
    output. The ``docker`` client dies with this process (a killed nightly leaves no build
    running: the engine cancels a build whose client went away)."""
    tag = tag_for(name, lock_sha256, project)
    also = ["-t", current_tag(name)] if current else []
    argv = [
        "docker",
        "build",
        "--network",
        "none",
        "-t",
        tag,
        *also,
        "--label",
        f"{LABEL_RECIPE}={name}",
        "--label",
        f"{LABEL_LOCK}={lock_sha256}",
        "--label",
        f"{LABEL_BUILD}={build_id}",
        "--label",
        f"{LABEL_PROJECT}={project}",
        str(context),
    ]
    try:
        proc.run(argv, env=_env(), timeout=3600, die_with_parent=True)
    except proc.ProcessError as e:
        msg = f"building the image for '{name}' from {context} failed:\n{e}"
        raise DockerError(msg) from None
    finally:  # the unpack stage's image is a full copy of the environment: never keep it
        prune_stages(project, build_id)
    return inspect(tag)


def _ids(*filters: str) -> list[str]:
    argv = ["docker", "images", "-q", "--no-trunc"]
    for f in filters:
        argv += ["--filter", f]
    r = proc.run(argv, env=_env(), timeout=60, check=False)
    return list(dict.fromkeys(r.stdout.split()))


def prune_stages(project: str, build_id: str) -> None:
    """Remove the unpack-stage image of build ``build_id`` of ``project`` (the template
    labels that stage with both), by id: never an engine-wide prune, which would also take
    other builds' stages, even while they are being built (the engine is shared)."""
    for image_id in _ids(
        f"label={LABEL_STAGE}={STAGE_UNPACK}",
        f"label={LABEL_PROJECT}={project}",
        f"label={LABEL_BUILD}={build_id}",
    ):
        proc.run(["docker", "rmi", image_id], env=_env(), timeout=300, check=False)


def build_images(project: str, build_id: str) -> list[str]:
    """Ids of every image of build ``build_id`` of ``project`` (tagged or not)."""
    return _ids(f"label={LABEL_PROJECT}={project}", f"label={LABEL_BUILD}={build_id}")


def remove_build_images(project: str, build_id: str) -> None:
    """Remove every image of build ``build_id`` of ``project`` with all its tags (a
    discarded candidate's); another project's images are never touched."""
    for image_id in build_images(project, build_id):
        proc.run(["docker", "rmi", "--force", image_id], env=_env(), timeout=300, check=False)


def inspect(tag: str) -> Image:
    """The image ``tag`` (DockerError if absent)."""
    try:
        r = proc.run(["docker", "image", "inspect", tag], env=_env(), timeout=60)
    except proc.ProcessError as e:
        msg = f"no image {tag}: {e}"
        raise DockerError(msg) from None
    data = json.loads(r.stdout)[0]
    labels = (data.get("Config") or {}).get("Labels") or {}
    return Image(
        tag,
        data["Id"],
        int(data["Size"]),
        labels.get(LABEL_BUILD, ""),
        labels.get(LABEL_PROJECT, ""),
    )


def smoke(tag: str, checks: Smoke) -> None:
    """Run the smoke imports and commands inside ``tag`` (as its default, non-root user).

    Raises DockerError naming the failed check, exit code and stderr."""
    run = ["docker", "run", "--rm", "--network", "none", tag]
    uid = proc.run([*run, "id", "-u"], env=_env(), timeout=120).stdout.strip()
    if uid == "0":
        msg = f"image {tag} runs as root; the Dockerfile must switch to a non-root USER"
        raise DockerError(msg)
    todo = [("import " + m, ["python", "-I", "-B", "-c", f"import {m}"]) for m in checks.imports]
    todo += [(f"`{c}`", ["sh", "-c", c]) for c in checks.commands]
    for n, (what, argv) in enumerate(todo):
        # named, and removed by name after a failure: the engine here (20.10) sometimes
        # keeps a --rm container that exited non-zero, and it would pin the image
        name = f"envbuild-smoke-{os.getpid()}-{n}"
        r = proc.run([*run[:3], "--name", name, *run[3:], *argv], env=_env(), timeout=600,
                     check=False)  # fmt: skip
        if r.returncode != 0:
            proc.run(["docker", "rm", "--force", name], env=_env(), timeout=120, check=False)
            msg = proc.format_failure(r, f"smoke check {what} failed inside image {tag}")
            raise DockerError(msg)


def images(project: str, name: str | None = None) -> list[Image]:
    """The images of ``project`` (by label), optionally of one recipe."""
    flt = f"label={LABEL_RECIPE}" + (f"={name}" if name else "")
    r = proc.run(
        ["docker", "images", "--filter", flt, "--filter", f"label={LABEL_PROJECT}={project}",
         "--format", "{{.Repository}}:{{.Tag}}"],
        env=_env(),
        timeout=60,
    )  # fmt: skip
    tags = sorted({t for t in r.stdout.split() if not t.endswith(":<none>")})
    return [inspect(t) for t in tags]


def dangling(project: str, name: str) -> list[tuple[str, int]]:
    """(image id, bytes) of ``project``'s untagged images of recipe ``name``: earlier builds
    of a tag that was moved on, and unpack stages a killed build left (the template labels
    that stage with project, recipe and build). Other projects' are never listed."""
    out = []
    mine = f"label={LABEL_PROJECT}={project}"
    for image_id in _ids("dangling=true", f"label={LABEL_RECIPE}={name}", mine):
        size = proc.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", image_id],
            env=_env(), timeout=60, check=False,
        ).stdout.strip()  # fmt: skip
        out.append((image_id, int(size or 0)))
    return out


def remove(tag: str) -> None:
    """``docker rmi`` the image tag."""
    proc.run(["docker", "rmi", tag], env=_env(), timeout=300)


def retag(source: str, target: str) -> None:
    """Point tag ``target`` at the image ``source`` (``docker tag``, one engine call).
    Raises DockerError if ``source`` does not exist."""
    try:
        proc.run(["docker", "tag", source, target], env=_env(), timeout=60)
    except proc.ProcessError as e:
        msg = f"cannot tag {source} as {target}: {e}"
        raise DockerError(msg) from None


def untag(tag: str) -> None:
    """Remove tag ``tag`` if it exists (the image stays while another tag names it). Forced:
    a container that ``docker run --rm`` has not yet removed must not keep the tag alive."""
    proc.run(["docker", "rmi", "--force", "--no-prune", tag], env=_env(), timeout=300, check=False)
