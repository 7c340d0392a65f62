"""The project's side of publishing: the current build of a recipe to ``[publish] registry``
(``doit publish``); a nightly candidate or rollback target pushed by digest before its switch,
and ``:current`` moved as a step of that journaled switch (:mod:`envbuild.ops.promotion`).
The registry steps are :mod:`envbuild.deliver.publish`. With ``[publish] signing_key``, both
sign the build's provenance (:func:`provenance`, :mod:`envbuild.deliver.attest`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from envbuild.deliver.attest_oci import Provenance
from envbuild.deliver.publish import Published, Release, publish
from envbuild.deliver.tags import move_tags
from envbuild.errors import ConfigError, EnvBuildError
from envbuild.project import CONFIG_FILE, Project
from envbuild.recipe.model import Recipe
from envbuild.records import BuildInfo, PublishRecord
from envbuild.util.mediatypes import OCI_MANIFEST, SBOM_ARTIFACT, TARBALL_TYPES


def publish_project(
    project: Project, recipe: Recipe, pack_is_current: Callable[[Path, str], bool]
) -> Published:
    """Publish the current build of ``recipe`` to the project's ``[publish]`` registry: the
    image ``dist/<name>-<platform>.oci.tar``, the tarball ``pack`` made for this build, the
    SBOM ``dist/<name>-<platform>.cdx.json`` if there is one. Records the outcome in
    ``build/state/<name>.publish.json``. Raises ConfigError without a registry,
    EnvBuildError if an artifact is missing (``pack_is_current``: the pack stage's check, of
    a floor above), RegistryError from the registry."""
    from envbuild.layout import build_record, read_marker, state_file
    from envbuild.ship.pack import tarball_path

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
    signed = dist / f"{name}-{info.platform}.intoto.json"
    release = replace(release, provenance=provenance(project, release, info, signed))
    done = publish(project.publish_registry, release, project.publish_insecure)
    record = _record(done, info.build_id, recipe.smoke.imports)
    record.save(state_file(project, name, "publish"))
    # kept with the build, for `doit rollback` to move :current back to its image
    record.save(build_record(project, name, info.build_id, "publish"))
    return done


def recorded_image(project: Project, name: str, build_id: str) -> str:
    """The image digest build ``build_id`` of ``name`` was pushed as to the project's
    ``[publish]`` registry, as its publish record says ("" if never pushed there)."""
    from envbuild.layout import build_record

    done = PublishRecord.peek(build_record(project, name, build_id, "publish"))
    same = done is not None and done.repository == f"{project.publish_registry}/{name.lower()}"
    return done.image if done is not None and same else ""


def push_build(project: Project, name: str, build_id: str, smoke_imports: tuple[str, ...]) -> str:
    """Push build ``build_id`` of recipe ``name`` to the ``[publish]`` registry by digest,
    moving no tag: its kept image archive (``dist/history/<name>/<id>.oci.tar``), tarball and
    SBOM, titled as ``doit publish`` titles them (``<name>-<platform>.<ext>``), so either
    publish of one build makes the same artifacts. What the registry has is not sent again
    (HEAD requests only). The step a nightly candidate (or a rollback target) takes before its
    journaled switch, which then moves the tags (:func:`move_current`). Records the outcome
    with the build (``envs/.builds/<name>/<id>.publish.json``). Returns the image's manifest
    digest. Raises EnvBuildError without a kept image archive (a build pushed before, whose
    archive is gone, returns its recorded digest), RegistryError from the registry (no tag
    moved)."""
    from envbuild.layout import build_record, builds_root, read_marker
    from envbuild.ship.oci_stage import kept_image

    registry = project.publish_registry
    info = read_marker(builds_root(project, name) / build_id)
    history = project.path("dist") / "history" / name
    image = kept_image(project, name, build_id)
    if info is None or not image.is_file():
        if recorded := recorded_image(project, name, build_id):
            return recorded  # nothing to push from: the registry must still have it
        msg = (
            f"{name}: build {build_id} has no image archive ({image}) to publish to {registry}; "
            '[publish] needs the image written without an engine: set [image] base = "..."'
        )
        raise EnvBuildError(msg)
    tarball = next(iter(sorted(history.glob(f"{build_id}.tar.*"))), None)
    stem = f"{name}-{info.platform}"
    release = Release(name=name, platform=info.platform, lock_sha256=info.lock_sha256,
                      image=image, tarball=tarball, sbom=history / f"{build_id}.cdx.json",
                      smoke_imports=smoke_imports,
                      tarball_title=f"{stem}.{tarball.name.split('.', 1)[1]}" if tarball else "",
                      sbom_title=f"{stem}.cdx.json")  # fmt: skip
    signed = history / f"{build_id}.intoto.json"
    release = replace(release, provenance=provenance(project, release, info, signed))
    pushed = publish(registry, release, project.publish_insecure, tags=False)
    _record(pushed, build_id, smoke_imports).save(build_record(project, name, build_id, "publish"))
    return pushed.image


def move_current(project: Project, name: str, registry: str, image: str, build_id: str) -> str:
    """The registry step of a journaled switch (nightly, rollback): make sure ``registry``
    (the project's ``[publish]`` one) has build ``build_id``'s image ``image``, pushing it
    again from the kept archive if it lost it (HEAD requests when it has it), then point
    ``registry/<name>``'s ``:current``, ``:<lock 12 hex>`` and ``:<date>`` at it, repeatable
    after kill -9, and make the build's publish record current
    (``build/state/<name>.publish.json``). Returns a line saying what moved. Raises
    RegistryError (the journal stays, the next command finishes)."""
    from envbuild.layout import build_record, builds_root, read_marker, state_file

    info = read_marker(builds_root(project, name) / build_id)
    record = PublishRecord.peek(build_record(project, name, build_id, "publish"))
    imports = record.smoke_imports if record else ()
    if push_build(project, name, build_id, imports) != image:
        msg = f"{name}: build {build_id}'s image archive is not the image {image} its switch names"
        raise EnvBuildError(msg)
    lock = info.lock_sha256 if info else ""
    moved = move_tags(registry, name, image, lock, project.publish_insecure)
    pushed = PublishRecord.peek(build_record(project, name, build_id, "publish"))
    if pushed is not None:
        pushed.save(state_file(project, name, "publish"))
    tags = ", ".join(f":{t}" for t in moved) or "no tag (already there)"
    return f"{registry}/{name.lower()}@{image}: moved {tags}"


def provenance(
    project: Project, release: Release, info: BuildInfo, envelope: Path
) -> Provenance | None:
    """What to sign for build ``info`` published as ``release`` (None without ``[publish]
    signing_key``): the in-toto Statement of :func:`envbuild.deliver.attest.statement` with
    the recipe file's and the build's lockfile's sha256 (the lock copy kept with the build,
    its packages for the build's platform as resolved dependencies, read with envbuild's lock
    reader), subjects the image manifest (from ``release.image``), the tarball and the SBOM
    by digest; the envelope kept at ``envelope``. Raises ConfigError (key, ``${VAR}``
    unset), EnvBuildError (no lock copy), LockError, ImageError."""
    from envbuild.deliver.attest import BuildFacts, Subject, statement
    from envbuild.deliver.publish import canonical, the_image
    from envbuild.layout import builds_root, lock_copy
    from envbuild.lock.lockfile import read_packages
    from envbuild.ship.oci import Layout
    from envbuild.util.fs import file_sha256
    from envbuild.util.keys import key_file

    if not project.publish_signing_key:
        return None
    key = key_file(project.publish_signing_key, f"{project.root / CONFIG_FILE}: publish")
    lock = lock_copy(builds_root(project, release.name) / info.build_id)
    if not lock.is_file():
        msg = f"{release.name}: build {info.build_id} keeps no lockfile ({lock}) to sign"
        raise EnvBuildError(msg)
    packages = tuple(
        (str(p["url"]), str(p["hash"]["sha256"]))
        for p in read_packages(lock).packages
        if p["platform"] == info.platform
    )
    recipe = project.recipe_file(release.name)
    facts = BuildFacts(release.name, file_sha256(recipe) if recipe.is_file() else "",
                       file_sha256(lock), info.platform, info.build_id, packages)  # fmt: skip
    with Layout(release.image) as layout:
        image = the_image(layout)
    media = str(image.get("mediaType") or OCI_MANIFEST)
    subjects = [Subject("image", release.name.lower(), str(image["digest"]), media)]
    if release.tarball is not None:
        fmt = next((t for f, t in TARBALL_TYPES.items() if release.tarball.name.endswith(f)), "")
        subjects.append(Subject("tarball", release.tarball_title or release.tarball.name,
                                "sha256:" + file_sha256(release.tarball), fmt))  # fmt: skip
    if release.sbom is not None and release.sbom.exists():
        subjects.append(Subject("sbom", release.sbom_title or release.sbom.name,
                                "sha256:" + file_sha256(release.sbom), SBOM_ARTIFACT))  # fmt: skip
    body = canonical(statement(facts, tuple(subjects)))
    return Provenance(body, key, envelope, f"{release.name}-{info.platform}.intoto.json")


def _record(done: Published, build_id: str, smoke_imports: tuple[str, ...] = ()) -> PublishRecord:
    return PublishRecord(**asdict(done), build_id=build_id, smoke_imports=tuple(smoke_imports))


def summary(done: Published) -> str:
    """One line: where, which digest, what moved, what it cost, which key signed it."""
    moved = ", ".join(f":{t}" for t in done.tags_moved) or "no tag moved"
    signed = f", provenance signed by key {done.signing_keyid[:16]}" if done.signed else ""
    return (
        f"{done.repository}@{done.image}: {done.uploaded} upload(s), "
        f"{done.bytes_sent / 1e6:.1f} MB sent, {moved} ({done.seconds:.1f} s){signed}"
    )
