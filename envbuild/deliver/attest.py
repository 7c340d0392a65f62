"""Signed provenance of an environment: an in-toto Statement v1 carrying the SLSA provenance
v1 predicate, in a DSSE envelope signed with the ``[publish] signing_key``.

Formats, as published:

* Statement v1: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
  (``_type`` https://in-toto.io/Statement/v1; each subject a ResourceDescriptor with a
  ``sha256`` digest);
* SLSA provenance v1: https://slsa.dev/spec/v1.0/provenance (``buildDefinition``,
  ``runDetails``);
* DSSE: https://github.com/secure-systems-lab/dsse/blob/master/envelope.md, payload type
  ``application/vnd.in-toto+json``; signed and verified with securesystemslib's
  ``Envelope`` / ``CryptoSigner`` / ``SSlibKey``, key ids as securesystemslib computes them
  (sha256 of the canonical JSON of the public key's ``keytype``, ``scheme``, ``keyval``).

Subjects carry a role (annotation :data:`ROLE`): ``image`` (the image manifest), ``tarball``
(the conda-pack tarball), ``sbom`` (the CycloneDX file). :func:`verify` checks the signature
first and reads the payload only then; everything in an envelope is a stranger's data until
its signature holds, and is parsed within :data:`MAX_ENVELOPE_BYTES`. The registry side
(attaching, finding, choosing among referrers) is :mod:`envbuild.deliver.attest_oci`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envbuild import __version__
from envbuild.errors import EnvBuildError, RegistryError
from envbuild.util.mediatypes import IN_TOTO
from envbuild.util.reference import is_digest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
    from securesystemslib.signer import SSlibKey

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/envbuild/envbuild/buildtypes/conda-environment/v1"
BUILDER_ID = f"https://github.com/envbuild/envbuild@{__version__}"
ROLE = "org.envbuild.role"
ROLES = ("image", "tarball", "sbom")
MAX_ENVELOPE_BYTES = 4 << 20
MAX_SIGNATURES = 16
MAX_PUBLIC_KEY_BYTES = 64 << 10


@dataclass(frozen=True, slots=True)
class Subject:
    """One thing the statement vouches for: ``role`` (one of :data:`ROLES`), ``name`` (a
    file name, or the repository name for the image), ``digest`` (``sha256:<64 hex>``),
    ``media_type``."""

    role: str
    name: str
    digest: str
    media_type: str = ""


@dataclass(frozen=True, slots=True)
class BuildFacts:
    """What the provenance says about a build: recipe ``name`` and the sha256 (hex) of its
    file, the lockfile's sha256, the conda ``platform``, the ``build_id`` (the invocation),
    and each locked package as (url, sha256 hex) for ``platform``."""

    recipe: str
    recipe_sha256: str
    lock_sha256: str
    platform: str
    build_id: str
    packages: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """A verified statement: the ``keyid`` that signed it, its subjects as role -> digest,
    the builder id, build id (invocationId), recipe name and lock sha256 it names."""

    keyid: str
    subjects: dict[str, str]
    builder_id: str
    build_id: str
    recipe: str
    lock_sha256: str


def statement(facts: BuildFacts, subjects: tuple[Subject, ...]) -> dict[str, Any]:
    """The in-toto Statement v1 (SLSA provenance v1 predicate) of ``facts`` about
    ``subjects``, as a JSON-ready dict (formats: the module docstring)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": s.name,
                "digest": {"sha256": s.digest.removeprefix("sha256:")},
                **({"mediaType": s.media_type} if s.media_type else {}),
                "annotations": {ROLE: s.role},
            }
            for s in subjects
        ],
        "predicateType": PROVENANCE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "recipe": facts.recipe,
                    "recipeSha256": facts.recipe_sha256,
                    "lockSha256": facts.lock_sha256,
                    "platform": facts.platform,
                },
                "resolvedDependencies": [
                    {"uri": url, "digest": {"sha256": sha}} for url, sha in facts.packages
                ],
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"envbuild": __version__}},
                "metadata": {"invocationId": facts.build_id},
            },
        },
    }


def public_key_of(key: PrivateKeyTypes) -> SSlibKey:
    """The securesystemslib public key (with its default key id) of private ``key``."""
    from securesystemslib.signer import SSlibKey

    return SSlibKey.from_crypto(key.public_key())


def sign(payload: dict[str, Any], key: PrivateKeyTypes) -> bytes:
    """The DSSE envelope (JSON bytes) of ``payload`` (serialised as compact JSON with sorted
    keys) signed with ``key`` (Ed25519 or ECDSA P-256, :mod:`envbuild.util.keys`) through
    securesystemslib's ``CryptoSigner``: one signature, its ``keyid`` the key's default id."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner

    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    envelope = Envelope(body, IN_TOTO, {})
    envelope.sign(CryptoSigner(key, public_key_of(key)))
    return json.dumps(envelope.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def load_public_key(pem: bytes, where: str) -> SSlibKey:
    """The Ed25519 or ECDSA P-256 public key in ``pem`` (SubjectPublicKeyInfo PEM, as
    ``openssl pkey -pubout`` writes it) as a securesystemslib key. Raises EnvBuildError
    naming ``where`` (the file) and the fix; never quotes the content."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey

    fix = "give the public key as `openssl pkey -in signing.pem -pubout -out signing.pub` writes it"
    if len(pem) > MAX_PUBLIC_KEY_BYTES or b"-----BEGIN PUBLIC KEY-----" not in pem:
        msg = f"{where}: not a PEM public key (SubjectPublicKeyInfo, 'BEGIN PUBLIC KEY'); {fix}"
        raise EnvBuildError(msg)
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        msg = f"{where}: not a readable PEM public key; {fix}"
        raise EnvBuildError(msg) from None
    p256 = isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    if not (p256 or isinstance(key, ed25519.Ed25519PublicKey)):
        msg = f"{where}: a {type(key).__name__} key; envbuild verifies Ed25519 or ECDSA P-256 keys"
        raise EnvBuildError(msg)
    return SSlibKey.from_crypto(key)


def read_public_key(path: Path) -> bytes:
    """The bytes of public key file ``path`` (at most 64 KiB, a regular file). Raises
    EnvBuildError naming it."""
    from envbuild.util.fs import read_bounded

    try:
        return read_bounded(path, MAX_PUBLIC_KEY_BYTES)
    except OSError as e:
        msg = f"--verify-key {path}: cannot read it ({e.strerror}); name the public key's PEM file"
        raise EnvBuildError(msg) from None


def _refuse(why: str) -> RegistryError:
    return RegistryError(f"provenance refused: {why}")


def _envelope_dict(data: bytes) -> dict[str, Any]:
    """The envelope's JSON object, its shape checked (DSSE fields, base64 strict, at most
    :data:`MAX_SIGNATURES` signatures). Raises RegistryError."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise _refuse(f"the envelope is {len(data)} bytes, over {MAX_ENVELOPE_BYTES}")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise _refuse("the envelope is not JSON") from None
    sigs = doc.get("signatures") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("payload"), str)
        or not isinstance(sigs, list)
        or not 0 < len(sigs) <= MAX_SIGNATURES
        or not all(
            isinstance(s, dict)
            and isinstance(s.get("sig"), str)
            and isinstance(s.get("keyid", ""), str)
            for s in sigs
        )
    ):
        raise _refuse("not a DSSE envelope (payload, payloadType, 1 to 16 signatures)")
    if doc.get("payloadType") != IN_TOTO:
        raise _refuse(f"payloadType is not {IN_TOTO}")
    try:
        for text in [doc["payload"], *(s["sig"] for s in sigs)]:
            base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("the envelope's payload or a signature is not base64") from None
    fresh = [{"keyid": s.get("keyid", ""), "sig": s["sig"]} for s in sigs]  # from_dict edits
    return {"payload": doc["payload"], "payloadType": IN_TOTO, "signatures": fresh}


def verify(envelope: bytes, public_key_pem: bytes, expected: dict[str, str]) -> StatementInfo:
    """Check DSSE ``envelope`` (JSON bytes, at most 4 MiB) against ``public_key_pem``
    (SubjectPublicKeyInfo PEM) and ``expected`` (role -> ``sha256:<hex>``, roles of
    :data:`ROLES`): signed by that key (securesystemslib ``Envelope.verify``, threshold 1),
    an in-toto Statement v1 with the SLSA provenance v1 predicate, and for each expected role
    exactly one subject of that role, with that digest. Returns what it states. Raises
    RegistryError (``provenance refused: ...``) naming what did not match, EnvBuildError for
    an unusable public key."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import FormatError, VerificationError

    key = load_public_key(public_key_pem, "the verification key")
    doc = _envelope_dict(envelope)
    by = sorted({str(s["keyid"])[:16] or "?" for s in doc["signatures"]})  # from_dict pops
    try:
        parsed = Envelope.from_dict(doc)
        parsed.verify([key], 1)
    except VerificationError:
        if key.keyid[:16] in by:  # a signature under our key id that does not hold
            why = f"a signature by key {key.keyid[:16]} does not verify (altered after signing)"
            raise _refuse(why) from None
        raise _refuse(f"not signed by key {key.keyid[:16]} (signed by {', '.join(by)})") from None
    except (FormatError, ValueError, KeyError, TypeError):
        raise _refuse("the envelope's signatures are malformed") from None
    return _checked_statement(parsed.payload, key.keyid, expected)


def _checked_statement(payload: bytes, keyid: str, expected: dict[str, str]) -> StatementInfo:
    """The statement in a verified ``payload``, its shape and subjects checked."""
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        raise _refuse("the signed payload is not JSON") from None
    if not isinstance(doc, dict) or doc.get("_type") != STATEMENT_TYPE:
        raise _refuse(f"the signed payload is not an in-toto Statement ({STATEMENT_TYPE})")
    if doc.get("predicateType") != PROVENANCE_TYPE:
        raise _refuse(f"the statement's predicate is not SLSA provenance ({PROVENANCE_TYPE})")
    found: dict[str, list[str]] = {}
    subjects = doc.get("subject")
    for s in subjects if isinstance(subjects, list) else []:
        role = _obj(_obj(s, "annotations"), ROLE)
        sha = _obj(_obj(s, "digest"), "sha256")
        if role in ROLES and isinstance(sha, str) and is_digest(f"sha256:{sha}"):
            found.setdefault(str(role), []).append(f"sha256:{sha}")
    for role, want in expected.items():
        have = found.get(role, [])
        if have != [want]:
            signed = ", ".join(have) or "none"
            raise _refuse(f"the {role} is {want}, the signed statement names {signed}")
    pred = _obj(doc, "predicate")
    params = _obj(_obj(pred, "buildDefinition"), "externalParameters")
    run = _obj(pred, "runDetails")
    text = lambda d, k: str(_obj(d, k) or "")  # noqa: E731
    return StatementInfo(
        keyid=keyid,
        subjects={role: digests[0] for role, digests in found.items() if len(digests) == 1},
        builder_id=text(_obj(run, "builder"), "id"),
        build_id=text(_obj(run, "metadata"), "invocationId"),
        recipe=text(params, "recipe"),
        lock_sha256=text(params, "lockSha256"),
    )


def _obj(d: Any, key: str) -> Any:
    """``d[key]`` if ``d`` is a JSON object that has it, else None (a stranger's JSON)."""
    return d.get(key) if isinstance(d, dict) else None
