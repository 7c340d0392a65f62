"""Provenance on a registry: the DSSE envelope of :mod:`envbuild.deliver.attest` attached to
an image as one more OCI referrer (``artifactType`` ``application/vnd.in-toto+json``, one
layer ``application/vnd.dsse.envelope.v1+json``; pushed by
:mod:`envbuild.deliver.publish` as it pushes the SBOM), found again for a re-publish, and
checked by ``envbuild pull --verify-key``.

A re-publish signs nothing new: an envelope already there (kept beside the artifacts, or
attached to the image) that this key signed for the same subjects is sent again as it is
(ECDSA signatures differ each time; a new one would be a new upload). Anyone who can write to
the repository can attach referrers: pull reads at most :data:`MAX_CANDIDATES` of them,
each envelope at most :data:`~envbuild.deliver.attest.MAX_ENVELOPE_BYTES`, and accepts the
environment only if one of them verifies with the given key for the digests it installs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envbuild.deliver.attest import (
    MAX_ENVELOPE_BYTES,
    ROLE,
    StatementInfo,
    public_key_of,
    read_public_key,
    sign,
    verify,
)
from envbuild.deliver.registry import Client
from envbuild.errors import RegistryError
from envbuild.util.mediatypes import DSSE_ENVELOPE, IN_TOTO, SBOM_ARTIFACT
from envbuild.util.reference import Reference

log = logging.getLogger("envbuild")

MAX_CANDIDATES = 16  # attestations (and SBOMs) of one image read by a pull, newest first


@dataclass(frozen=True, slots=True)
class Provenance:
    """What a publish signs: ``statement`` (the in-toto Statement, canonical JSON bytes, from
    :func:`envbuild.deliver.attest.statement`), ``key_file`` (the private key, checked by
    :mod:`envbuild.util.keys`), ``envelope`` (where the signed envelope is kept beside the
    artifacts), ``title`` (the file name the artifact's layer carries)."""

    statement: bytes
    key_file: Path
    envelope: Path
    title: str


def expected_subjects(statement: dict[str, Any]) -> dict[str, str]:
    """Role -> ``sha256:<hex>`` of the subjects of our own ``statement``."""
    return {s["annotations"][ROLE]: "sha256:" + s["digest"]["sha256"] for s in statement["subject"]}


def envelope_for(client: Client, ref: Reference, image: str, prov: Provenance) -> tuple[Path, str]:
    """The envelope to attach to image ``image`` (``sha256:<hex>``) in ``ref``'s repository,
    written to ``prov.envelope``, and the signing key's id: the kept envelope, else one
    attached to the image, if this key signed it for the same subjects; else a new signature.
    Raises ConfigError (key), RegistryError (registry), EnvBuildError if the statement is
    not about ``image``."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from envbuild.errors import EnvBuildError
    from envbuild.util.fs import atomic_write, read_bounded
    from envbuild.util.keys import load_private_key

    key = load_private_key(prov.key_file, "[publish] signing_key")
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    statement = json.loads(prov.statement)
    expected = expected_subjects(statement)
    if expected.get("image") != image:
        msg = f"the provenance names image {expected.get('image')}, the publish pushes {image}"
        raise EnvBuildError(msg)
    kept = []
    with contextlib.suppress(OSError):  # none kept (a fresh checkout): ask the registry
        kept = [read_bounded(prov.envelope, MAX_ENVELOPE_BYTES)]
    for data in _chain(kept, attached_envelopes(client, ref, image)):
        try:
            verify(data, pem, expected)
        except RegistryError:
            continue
        log.info("provenance of %s: reusing the envelope this key signed", image)
        break
    else:
        data = sign(statement, key)
    atomic_write(prov.envelope, data)
    return prov.envelope, public_key_of(key).keyid


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def attached_envelopes(client: Client, ref: Reference, image: str) -> Iterator[bytes]:
    """The DSSE envelopes attached to ``image`` as referrers, newest first, at most
    :data:`MAX_CANDIDATES`, each checked for shape and size (one DSSE layer of at most
    :data:`MAX_ENVELOPE_BYTES`) and fetched by digest. A malformed one is skipped (logged).
    Raises RegistryError if the registry fails."""
    for desc in _referrers(client, ref, image, IN_TOTO):
        try:
            yield _one_layer(client, ref, desc, DSSE_ENVELOPE, fetch=True)
        except RegistryError as e:
            log.warning("skipping attestation %s: %s", str(desc.get("digest"))[:19], e)


def _referrers(client: Client, ref: Reference, image: str, kind: str) -> list[dict[str, Any]]:
    found, _ = client.referrers(ref.repository, image)
    if not isinstance(found, list):
        return []
    out = [d for d in found if isinstance(d, dict) and d.get("artifactType") == kind]
    return out[::-1][:MAX_CANDIDATES]


def _one_layer(
    client: Client, ref: Reference, desc: dict[str, Any], media: str, fetch: bool
) -> bytes:
    """The one ``media`` layer of artifact ``desc``: its content if ``fetch`` (at most
    :data:`MAX_ENVELOPE_BYTES`; :meth:`Client.fetch_blob` reads no further than that and
    checks the digest), else its digest (ASCII). Raises RegistryError."""
    from envbuild.deliver.descriptor import manifest
    from envbuild.util.reference import is_digest

    digest = desc.get("digest")
    if not isinstance(digest, str) or not is_digest(digest):
        raise RegistryError("a referrer without a sha256 digest")
    data, _, _ = client.get_manifest(ref.with_target(digest))
    if len(data) > MAX_ENVELOPE_BYTES:
        raise RegistryError(f"its manifest is {len(data)} bytes")
    layers = manifest(data, f"artifact {digest}").layers
    if len(layers) != 1 or layers[0].media_type != media or layers[0].size > MAX_ENVELOPE_BYTES:
        raise RegistryError(f"not one {media} layer of at most {MAX_ENVELOPE_BYTES} bytes")
    blob, size = layers[0].digest, layers[0].size
    if not fetch:
        return blob.encode()
    buf = io.BytesIO()
    client.fetch_blob(ref.repository, blob, buf, size)
    return buf.getvalue()


def verify_pull(
    client: Client, ref: Reference, image: str, tarball: str, key_file: Path
) -> StatementInfo:
    """``envbuild pull --verify-key``: accept the environment whose tarball (blob digest
    ``tarball``) comes with image ``image`` only if an envelope attached to the image is
    signed by the public key in ``key_file`` (PEM SubjectPublicKeyInfo) for that image and
    that tarball, and any SBOM listed for the image is the one it signs. Call it before
    anything is unpacked. Returns the verified statement. Raises RegistryError naming what
    was missing or did not match (``provenance refused: ...``), EnvBuildError for the key
    file."""
    from envbuild.deliver.attest import load_public_key

    if not image:
        msg = (
            f"{ref}: provenance refused: this environment artifact names no image (no "
            "subject), and a signed provenance is attached to an image; pull the image"
        )
        raise RegistryError(msg)
    pem = read_public_key(key_file)
    load_public_key(pem, f"--verify-key {key_file}")  # a bad key file is named as such
    expected = {"image": image, "tarball": tarball}
    reasons: list[str] = []
    info = None
    for data in attached_envelopes(client, ref, image):
        try:
            info = verify(data, pem, expected)
            break
        except RegistryError as e:
            reasons.append(str(e).removeprefix("provenance refused: "))
    if info is None:
        why = "; ".join(dict.fromkeys(reasons)) or (
            "no signed provenance is attached to it (publish with [publish] signing_key)"
        )
        msg = f"{ref}: provenance refused for image {image}: {why}"
        raise RegistryError(msg)
    signed_sbom = info.subjects.get("sbom", "")
    for desc in _referrers(client, ref, image, SBOM_ARTIFACT):
        listed = _one_layer(client, ref, desc, SBOM_ARTIFACT, fetch=False).decode()
        if listed != signed_sbom:
            msg = (
                f"{ref}: provenance refused for image {image}: an SBOM listed for it "
                f"({listed}) is not the one the statement signs ({signed_sbom or 'none'})"
            )
            raise RegistryError(msg)
    return info
