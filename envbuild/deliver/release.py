"""The project's side of publishing: the current build of a recipe to ``[publish] registry``
(``doit publish``), and ``:current`` moved back on ``doit rollback``. The registry steps are
:mod:`envbuild.deliver.publish`."""

from __future__ import annotations

from envbuild.deliver.publish import Published, Release, move_tags, publish
from envbuild.errors import ConfigError, EnvBuildError
from envbuild.project import CONFIG_FILE, Project
from envbuild.recipe.model import Recipe


def publish_project(project: Project, recipe: Recipe) -> Published:
    """Publish the current build of ``recipe`` to the project's ``[publish]`` registry: the
    image ``dist/<name>-<platform>.oci.tar``, the tarball ``pack`` made for this build, the
    SBOM ``dist/<name>-<platform>.cdx.json`` if there is one. Records the outcome in
    ``build/state/<name>.publish.json``. Raises ConfigError without a registry,
    EnvBuildError if an artifact is missing, RegistryError from the registry."""
    from envbuild.graph.uptodate import pack_is_current
    from envbuild.layout import build_record, read_marker, state_file
    from envbuild.ship.pack import tarball_path
    from envbuild.util.fs import atomic_write

    name = recipe.name
    if not project.publish_registry:
        msg = (
            f"{project.root / CONFIG_FILE}: [publish] registry is not set; add\n"
            '    [publish]\n    registry = "ghcr.io/your-org"   # HOST[:PORT]/NAMESPACE'
        )
        raise ConfigError(msg)
    info = read_marker(project.env_prefix(name))
    if info is None:
        msg = f"environment '{name}' is not built; run `doit publish env={name}` after a build"
        raise EnvBuildError(msg)
    dist = project.path("dist")
    tarball = tarball_path(dist, name, info.platform, recipe.pack.format)
    if not pack_is_current(project.root, name):
        msg = f"{tarball} is not the tarball of build {info.build_id}; run `doit pack env={name}`"
        raise EnvBuildError(msg)
    image = dist / f"{name}-{info.platform}.oci.tar"
    if not image.exists():
        msg = (
            f"{image}: no OCI image layout there to publish; `doit docker env={name}` writes "
            "it (an image a Docker engine built can be exported with `skopeo copy "
            f"docker-daemon:envbuild/{name}:current oci-archive:{image}`)"
        )
        raise EnvBuildError(msg)
    release = Release(
        name=name,
        platform=info.platform,
        lock_sha256=info.lock_sha256,
        image=image,
        tarball=tarball,
        sbom=dist / f"{name}-{info.platform}.cdx.json",
        smoke_imports=recipe.smoke.imports,
    )
    done = publish(project.publish_registry, release, project.publish_insecure)
    atomic_write(state_file(project, name, "publish"), done.to_json())
    # kept with the build, for `doit rollback` to move :current back to its image
    atomic_write(build_record(project, name, info.build_id, "publish"), done.to_json())
    return done


def rollback_tags(project: Project, name: str, build_id: str) -> str:
    """After ``doit rollback`` made build ``build_id`` current: point ``:current`` (and its
    lock and date tags) at that build's published image. Returns a line saying what moved.
    A build never published moves nothing (``doit publish`` publishes it)."""
    from envbuild.layout import build_record, builds_root, read_json, read_marker

    record = read_json(build_record(project, name, build_id, "publish"))
    if not record or record.get("repository", "").rsplit("/", 1)[0] != project.publish_registry:
        return (
            f"{name}: build {build_id} was never published to {project.publish_registry}; "
            f":current is unchanged (run `doit publish env={name}`)"
        )
    info = read_marker(builds_root(project, name) / build_id)
    lock = info.lock_sha256 if info else ""
    moved = move_tags(
        project.publish_registry, name, record["image"], lock, project.publish_insecure
    )
    tags = ", ".join(f":{t}" for t in moved) or "no tag (already there)"
    return f"{record['repository']}@{record['image']}: moved {tags}"


def summary(done: Published) -> str:
    """One line: where, which digest, what moved, what it cost."""
    moved = ", ".join(f":{t}" for t in done.tags_moved) or "no tag moved"
    return (
        f"{done.repository}@{done.image}: {done.uploaded} upload(s), "
        f"{done.bytes_sent / 1e6:.1f} MB sent, {moved} ({done.seconds:.1f} s)"
    )
