"""Publish an environment to an OCI registry: its image by digest, its conda-pack tarball as
an OCI artifact, its SBOM as a referrer of the image, then the tags.

Order, so that a publish cut anywhere (registry down, credentials refused, disk full on the
registry, kill -9) has moved no tag and the next publish finishes the job: every blob
(skipped where the registry has it), then the manifests by digest (skipped likewise), then the
referrers tag where the registry has no referrers API, and the tags last, ``:current`` the
very last. The registry itself is the record of what is there: nothing is journaled locally,
each step asks it first (HEAD), so a repeated publish of the same build uploads nothing and
moves no tag.

What goes where (``REGISTRY/NAMESPACE/NAME``):

* the image of ``dist/NAME-<platform>.oci.tar`` (any OCI image layout), by digest; tags
  ``:<lock sha256, 12 hex>``, ``:<UTC date YYYY-MM-DD>`` (only when ``:current`` moves) and
  ``:current``;
* the tarball, as an artifact manifest (``artifactType`` :data:`ENV_ARTIFACT`) whose
  ``subject`` is the image, annotated with recipe, platform, lock sha256 and smoke imports
  (what ``envbuild pull`` checks);
* ``dist/NAME-<platform>.cdx.json`` if it exists, as an artifact (``artifactType``
  ``application/vnd.cyclonedx+json``) whose ``subject`` is the image;
* with ``[publish] signing_key``, the signed provenance (:mod:`envbuild.deliver.attest_oci`)
  as an artifact (``artifactType`` ``application/vnd.in-toto+json``) whose ``subject`` is
  the image.

Referrers follow OCI distribution 1.1: the registry's referrers API where it has one (it
answers ``OCI-Subject`` to the manifest push), else the referrers tag schema
(``sha256-<hex>``, an index of the referrers' descriptors) kept by us.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from envbuild.deliver import tags as tags_mod
from envbuild.deliver.attest_oci import Provenance, envelope_for
from envbuild.deliver.registry import Client, connect, fallback_tag
from envbuild.deliver.registry_http import DEADLINE, Deadline, watchdog
from envbuild.deliver.tags import TagMoveError
from envbuild.errors import RegistryError
from envbuild.ship.oci import Layout
from envbuild.util import kill_points
from envbuild.util.mediatypes import (
    DOCKER_LIST,
    DSSE_ENVELOPE,
    ENV_ARTIFACT,
    IN_TOTO,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    SBOM_ARTIFACT,
    TARBALL_TYPES,
)
from envbuild.util.reference import Reference, parse_reference, sha256_digest

log = logging.getLogger("envbuild")

EMPTY = b"{}"
ANN_RECIPE = "org.envbuild.recipe"
ANN_LOCK = "org.envbuild.lock-sha256"  # as the image labels it
ANN_PLATFORM = "org.envbuild.platform"
ANN_IMPORTS = "org.envbuild.smoke.imports"
ANN_TITLE = "org.opencontainers.image.title"


@dataclass(frozen=True, slots=True)
class Release:
    """What one publish sends: environment ``name`` for ``platform``, built from the lock
    with ``lock_sha256``; ``image`` an OCI layout (directory or archive); ``tarball`` a
    conda-pack tarball and ``sbom`` a CycloneDX file (each optional); ``smoke_imports`` the
    modules a pull imports before switching; ``tarball_title``, ``sbom_title``: the file
    names the artifacts carry (``org.opencontainers.image.title``, what ``oras pull`` writes;
    default: the files' own names), so a kept copy publishes as its published name;
    ``provenance``: what to sign and attach (None: unsigned)."""

    name: str
    platform: str
    lock_sha256: str
    image: Path
    tarball: Path | None = None
    sbom: Path | None = None
    smoke_imports: tuple[str, ...] = ()
    tarball_title: str = ""
    sbom_title: str = ""
    provenance: Provenance | None = None


@dataclass(frozen=True, slots=True)
class Published:
    """The outcome: ``repository`` (``host/namespace/name``), the three digests (empty when
    not published), tags moved, blobs and manifests uploaded, bytes sent and received,
    whether the registry has the referrers API, wall time in seconds; ``signed``: whether
    a provenance was attached, ``signing_keyid`` (securesystemslib key id) and
    ``attestation`` (its artifact manifest's digest)."""

    repository: str
    image: str
    tarball: str
    sbom: str
    tags_moved: tuple[str, ...]
    uploaded: int
    bytes_sent: int
    bytes_received: int
    referrers_api: bool
    seconds: float
    signed: bool = False
    signing_keyid: str = ""
    attestation: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def canonical(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces): the same content, the same digest."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _put_manifest_once(client: Client, ref: Reference, data: bytes, media: str) -> bool:
    """PUT manifest ``data`` by its digest unless the registry has it. True if uploaded."""
    at = ref.with_target(sha256_digest(data))
    if client.manifest_digest(at) is not None:
        return False
    client.put_manifest(at, data, media)
    return True


@dataclass(frozen=True, slots=True)
class Blob:
    """One blob a registry needs: ``digest`` (``sha256:<hex>``), ``size`` in bytes,
    ``media_type`` as the descriptor naming it says."""

    digest: str
    size: int
    media_type: str


def the_image(layout: Layout) -> dict[str, Any]:
    """The one manifest descriptor the layout's ``index.json`` lists (an image, or an index of
    images). Raises RegistryError if it lists none or several."""
    entries = layout.read_json("index.json").get("manifests") or []
    if len(entries) != 1:
        msg = (
            f"{layout.path}: index.json lists {len(entries)} manifests; envbuild publishes a "
            "layout holding exactly one image"
        )
        raise RegistryError(msg)
    return dict(entries[0])


def walk(layout: Layout, descriptor: dict[str, Any]) -> list[tuple[Blob, bool]]:
    """Everything ``descriptor`` needs on a registry, children first: (blob, is a manifest).
    Layers and configs precede their manifest; images precede their index."""
    data = layout.read_blob(descriptor["digest"])
    manifest = json.loads(data)
    media = descriptor.get("mediaType") or manifest.get("mediaType", "")
    out: list[tuple[Blob, bool]] = []
    if media in (OCI_INDEX, DOCKER_LIST) or "manifests" in manifest:
        for child in manifest.get("manifests", []):
            out += walk(layout, child)
    else:
        for d in (manifest["config"], *manifest.get("layers", [])):
            out.append((Blob(d["digest"], int(d["size"]), d.get("mediaType", "")), False))
    out.append((Blob(descriptor["digest"], len(data), media), True))
    return out


def push_layout(client: Client, ref: Reference, layout: Layout) -> tuple[dict[str, Any], int]:
    """Push the one image of ``layout`` to ``ref``'s repository by digest: blobs the registry
    lacks, then manifests, children first. Returns (its descriptor, uploads made)."""
    image = the_image(layout)
    uploads = 0
    for blob, is_manifest in walk(layout, image):
        if is_manifest:
            data = layout.read_blob(blob.digest)
            uploads += _put_manifest_once(client, ref, data, blob.media_type)
            kill_points.reached("publish:manifest")
        else:
            uploads += client.push_blob(
                ref.repository,
                blob.digest,
                blob.size,
                functools.partial(layout.open_blob, blob.digest),
            )
            kill_points.reached("publish:blob")
    media = image.get("mediaType") or json.loads(layout.read_blob(image["digest"])).get(
        "mediaType", OCI_MANIFEST
    )
    return {"mediaType": media, "digest": image["digest"], "size": int(image["size"])}, uploads


def _artifact(
    client: Client,
    ref: Reference,
    file: Path,
    artifact_type: str,
    layer_type: str,
    subject: dict[str, Any],
    annotations: dict[str, str],
    title: str = "",
) -> tuple[dict[str, Any], int]:
    """Push ``file`` as a one-layer artifact whose ``subject`` is ``subject``, its layer
    titled ``title`` (default: the file's name). Returns (the artifact manifest's
    descriptor, for the referrers index; uploads made)."""
    from envbuild.util.fs import file_sha256

    size = file.stat().st_size
    digest = "sha256:" + file_sha256(file)
    uploads = int(client.push_blob(ref.repository, digest, size, lambda: file.open("rb")))
    empty = sha256_digest(EMPTY)
    uploads += client.push_blob(ref.repository, empty, len(EMPTY), lambda: io.BytesIO(EMPTY))
    kill_points.reached("publish:blob")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": len(EMPTY)},
        "layers": [
            {
                "mediaType": layer_type,
                "digest": digest,
                "size": size,
                "annotations": {ANN_TITLE: title or file.name},
            }
        ],
        "subject": subject,
        "annotations": annotations,
    }
    data = canonical(manifest)
    uploads += _put_manifest_once(client, ref, data, OCI_MANIFEST)
    kill_points.reached("publish:manifest")
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": sha256_digest(data),
        "size": len(data),
        "artifactType": artifact_type,
        "annotations": annotations,
    }
    return descriptor, uploads


def _update_referrers_tag(
    client: Client, ref: Reference, subject: str, wanted: list[dict[str, Any]]
) -> tuple[bool, int]:
    """Make the referrers of ``subject`` include ``wanted``: nothing to do where the registry
    has the referrers API; else add what is missing to the ``sha256-<hex>`` index tag.
    Returns (referrers API present, uploads made)."""
    have, api = client.referrers(ref.repository, subject)
    if api:
        known = {d["digest"] for d in have}
        missing = [d["digest"] for d in wanted if d["digest"] not in known]
        if missing:  # an OCI 1.1 registry indexes a subject when the manifest is pushed
            log.warning("registry %s does not list referrers %s yet", client.host, missing)
        return True, 0
    known = {d["digest"] for d in have}
    missing = [d for d in wanted if d["digest"] not in known]
    if not missing:
        return False, 0
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*have, *missing]}
    client.put_manifest(ref.with_target(fallback_tag(subject)), canonical(index), OCI_INDEX)
    kill_points.reached("publish:referrers")
    return False, 1


def publish(
    registry: str,
    release: Release,
    insecure: bool = False,
    today: str | None = None,
    tags: bool = True,
    deadline: Deadline | None = None,
) -> Published:
    """Publish ``release`` to ``registry`` (``HOST[:PORT]/NAMESPACE``) as
    ``registry/<name>``; ``today`` (``YYYY-MM-DD``, default: the UTC date) names the date
    tag. Without ``tags``, everything is pushed by digest and no tag moves (a nightly
    candidate before its switch; :func:`move_tags` is the switch's step). ``deadline``
    (default: :data:`DEADLINE` from now) bounds the whole publish. Raises RegistryError naming
    the registry and the step, and which tags had moved (none, unless the tags' own step
    failed: TagMoveError)."""
    start = time.perf_counter()
    # OCI repository names are lower-case; recipe names may not be
    ref = parse_reference(f"{registry.rstrip('/')}/{release.name.lower()}:current")
    deadline = deadline or Deadline.after(DEADLINE)
    try:
        with watchdog(deadline, f"registry {ref.host}: publish"):
            return _publish(ref, release, insecure, today, tags, start, deadline)
    except TagMoveError:
        raise
    except RegistryError as e:
        msg = f"{e}\nno tag was moved; the next publish sends only what the registry lacks"
        raise RegistryError(msg) from None


def _publish(
    ref: Reference,
    release: Release,
    insecure: bool,
    today: str | None,
    tags: bool,
    start: float,
    deadline: Deadline,
) -> Published:
    client = connect(ref.host, insecure, deadline)
    uploads = 0
    with Layout(release.image) as layout:
        subject, n = push_layout(client, ref, layout)
        uploads += n
        image_manifest = layout.read_blob(subject["digest"])
    common = {
        ANN_RECIPE: release.name,
        ANN_PLATFORM: release.platform,
        ANN_LOCK: release.lock_sha256,
    }
    referrers: list[dict[str, Any]] = []
    tarball = sbom = ""
    if release.tarball is not None:
        fmt = next((f for f in TARBALL_TYPES if release.tarball.name.endswith(f)), "")
        if not fmt:
            msg = f"{release.tarball}: not a .tar.zst or .tar.gz conda-pack tarball"
            raise RegistryError(msg)
        ann = {**common, ANN_IMPORTS: ",".join(release.smoke_imports),
               **_pinned_size(image_manifest, release.tarball)}  # fmt: skip
        desc, n = _artifact(client, ref, release.tarball, ENV_ARTIFACT, TARBALL_TYPES[fmt],
                            subject, ann, release.tarball_title)  # fmt: skip
        referrers.append(desc)
        tarball, uploads = desc["digest"], uploads + n
    if release.sbom is not None and release.sbom.exists():
        desc, n = _artifact(client, ref, release.sbom, SBOM_ARTIFACT, SBOM_ARTIFACT, subject,
                            dict(common), release.sbom_title)  # fmt: skip
        referrers.append(desc)
        sbom, uploads = desc["digest"], uploads + n
    attestation = keyid = ""
    if release.provenance is not None:
        envelope, keyid = envelope_for(client, ref, subject["digest"], release.provenance)
        desc, n = _artifact(client, ref, envelope, IN_TOTO, DSSE_ENVELOPE, subject,
                            dict(common), release.provenance.title)  # fmt: skip
        referrers.append(desc)
        attestation, uploads = desc["digest"], uploads + n
    api, n = _update_referrers_tag(client, ref, subject["digest"], referrers)
    uploads += n
    moved = (
        tags_mod.move(client, ref, release.lock_sha256, subject, image_manifest, today)
        if tags
        else ()
    )
    t = client.transfer
    return Published(
        repository=f"{ref.host}/{ref.repository}",
        image=subject["digest"],
        tarball=tarball,
        sbom=sbom,
        tags_moved=moved,
        uploaded=uploads,
        bytes_sent=t.sent,
        bytes_received=t.received,
        referrers_api=api,
        seconds=round(time.perf_counter() - start, 3),
        signed=bool(attestation),
        signing_keyid=keyid,
        attestation=attestation,
    )


def _pinned_size(image_manifest: bytes, tarball: Path) -> dict[str, str]:
    """The unpacked size the image's annotations record for ``tarball``, as the artifact's
    annotation ({} for an image that pins no tarball: not written by envbuild). Raises
    RegistryError if the image pins another tarball (pulls of it would refuse this one)."""
    from envbuild.ship.oci_image import ANN_ENV_DIGEST, ANN_ENV_UNPACKED
    from envbuild.util.fs import file_sha256

    pins = json.loads(image_manifest).get("annotations") or {}
    if ANN_ENV_DIGEST not in pins:
        return {}
    digest = "sha256:" + file_sha256(tarball)
    if pins[ANN_ENV_DIGEST] != digest:
        msg = (
            f"{tarball} ({digest}) is not the tarball the image pins ({pins[ANN_ENV_DIGEST]}); "
            "pack and write the image of the same build (`doit docker`) before publishing"
        )
        raise RegistryError(msg)
    return {ANN_ENV_UNPACKED: str(pins.get(ANN_ENV_UNPACKED, ""))}
