"""Which environment a reference pins, decided only from manifests checked by digest.

An image written by ``doit docker`` records its build's tarball in its manifest's annotations
(:data:`envbuild.ship.oci_image.ANN_ENV_DIGEST` and the size, unpacked size and SBOM beside
it), so naming the image by digest names the tarball too. Its referrers (a list anyone who
can push may append to) only say where an artifact holding that tarball may be: pull takes
the one artifact whose single layer has exactly the recorded digest and size, and refuses
none or several. Named by its own digest, an environment artifact pins its layer itself.
The smoke imports come from the manifest that pins the tarball, never from an unpinned one,
and must be Python module names (:func:`envbuild.ship.smoke.is_module_name`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from envbuild.deliver.descriptor import parse_json
from envbuild.errors import RegistryError
from envbuild.util.redact import printable
from envbuild.util.reference import is_digest

_SIZE_RE = re.compile(r"[0-9]{1,15}\Z")
MAX_CANDIDATES = 16  # environment artifacts among one image's referrers looked at
MAX_IMPORTS = 256
# An artifact from before the unpacked size was recorded: bounded by 20x its compressed size
# (conda environments compress 3-6x with zstd; a bomb compresses thousands of times)
LEGACY_RATIO = 20
OLDER = (
    "was published by an older envbuild, whose image does not pin its environment; pull the "
    "environment artifact by its digest (REPO@sha256:...) or republish with this envbuild"
)


@dataclass(frozen=True, slots=True)
class Pinned:
    """What a pull installs: ``image`` and ``artifact`` manifest digests (``image`` empty for
    an artifact without subject), the tarball blob ``blob`` of ``size`` bytes,
    ``unpacked_size`` (bytes its regular files hold), the smoke ``imports``."""

    image: str
    artifact: str
    blob: str
    size: int
    unpacked_size: int
    imports: tuple[str, ...]


def annotations_of(manifest: dict[str, Any]) -> dict[str, str]:
    """The manifest's string annotations ({} if it has none or they are not an object)."""
    ann = manifest.get("annotations")
    if not isinstance(ann, dict):
        return {}
    return {k: v for k, v in ann.items() if isinstance(k, str) and isinstance(v, str)}


def digest_of(value: object, what: str) -> str:
    if not isinstance(value, str) or not is_digest(value):
        raise RegistryError(f"{what}: {printable(value)!r} is not a sha256 digest; refused")
    return value


def _size(ann: dict[str, str], key: str, what: str) -> int:
    value = ann.get(key)
    if value is None:
        raise RegistryError(f"{what} {OLDER} (no {key} annotation)")
    if not _SIZE_RE.match(value):
        msg = f"{what}: annotation {key} = {printable(value)!r} is not a size; refused"
        raise RegistryError(msg)
    return int(value)


def imports_of(ann: dict[str, str], what: str) -> tuple[str, ...]:
    """The smoke imports annotation (comma-separated module names) of a pinned manifest.
    Raises RegistryError naming the first name that is not a Python module name."""
    from envbuild.deliver.publish import ANN_IMPORTS
    from envbuild.ship.smoke import is_module_name

    names = tuple(n for n in ann.get(ANN_IMPORTS, "").split(",") if n)
    if len(names) > MAX_IMPORTS:
        raise RegistryError(f"{what}: {len(names)} smoke imports, at most {MAX_IMPORTS}; refused")
    for n in names:
        if not is_module_name(n):
            msg = f"{what}: smoke import {printable(n)!r} is not a Python module name; refused"
            raise RegistryError(msg)
    return names


def _layer(manifest: dict[str, Any], what: str) -> tuple[str, int]:
    layers = manifest.get("layers")
    if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict):
        n = len(layers) if isinstance(layers, list) else 0
        raise RegistryError(f"{what} has {n} layers, expected 1; refused")
    size = layers[0].get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{what}: layer size {printable(size)!r} is not a size; refused")
    return digest_of(layers[0].get("digest"), what), size


def from_artifact(manifest: dict[str, Any], digest: str, what: str) -> Pinned:
    """The environment an artifact manifest (checked against ``digest``) pins: its layer,
    its annotations' unpacked size (without one, :data:`LEGACY_RATIO` times the layer's
    size) and imports."""
    from envbuild.ship.oci_image import ANN_ENV_UNPACKED

    ann = annotations_of(manifest)
    blob, size = _layer(manifest, f"{what}: environment artifact {digest}")
    subject = manifest.get("subject")
    image = subject.get("digest") if isinstance(subject, dict) else ""
    image = digest_of(image, what) if image else ""
    if ANN_ENV_UNPACKED in ann:
        unpacked = _size(ann, ANN_ENV_UNPACKED, f"{what}: environment artifact {digest}")
    else:  # published by an older envbuild: its layer is pinned, its size bounded anyway
        unpacked = size * LEGACY_RATIO
    return Pinned(image, digest, blob, size, unpacked, imports_of(ann, what))


def from_image(client: Any, ref: Any, image: str, manifest: dict[str, Any]) -> Pinned:
    """The environment image ``image`` (its manifest ``manifest``, checked against that
    digest) pins: the one environment artifact among its referrers whose layer is the
    recorded tarball. Raises RegistryError naming the digests otherwise."""
    from envbuild.ship.oci_image import ANN_ENV_DIGEST, ANN_ENV_SIZE, ANN_ENV_UNPACKED
    from envbuild.util.mediatypes import ENV_ARTIFACT

    what = f"{ref}: image {image}"
    ann = annotations_of(manifest)
    found, _ = client.referrers(ref.repository, image)
    envs = sorted(
        {
            d.get("digest")
            for d in found
            if isinstance(d, dict) and d.get("artifactType") == ENV_ARTIFACT
        },
        key=str,
    )
    if ANN_ENV_DIGEST not in ann:
        if not envs:
            raise RegistryError(no_environment(client, ref, image))
        raise RegistryError(f"{what} {OLDER}")
    want = digest_of(ann[ANN_ENV_DIGEST], f"{what}: annotation {ANN_ENV_DIGEST}")
    size = _size(ann, ANN_ENV_SIZE, what)
    unpacked = _size(ann, ANN_ENV_UNPACKED, what)
    imports = imports_of(ann, what)
    if len(envs) > MAX_CANDIDATES:
        msg = (
            f"{what}: {len(envs)} environment artifacts refer to it, at most "
            f"{MAX_CANDIDATES} are looked at; refused"
        )
        raise RegistryError(msg)
    matching = []
    for cand in envs:
        if not isinstance(cand, str) or not is_digest(cand):
            continue  # not a digest: cannot be fetched by digest, so cannot match
        data, _, _ = client.get_manifest(ref.with_target(cand))  # checked against cand
        art = parse_json(data, f"{ref}: artifact {cand}")
        layers = art.get("layers")
        one = layers[0] if isinstance(layers, list) and len(layers) == 1 else None
        subject = art.get("subject")
        if (
            isinstance(one, dict)
            and one.get("digest") == want
            and one.get("size") == size
            and art.get("artifactType") == ENV_ARTIFACT
            and isinstance(subject, dict)
            and subject.get("digest") == image
        ):
            matching.append(cand)
    listed = ", ".join(printable(e) for e in envs) or "none"
    if not matching:
        msg = (
            f"{what} pins environment {want} ({size} bytes), but no environment artifact "
            f"among its referrers holds exactly that (listed: {listed}); refused. Republish "
            "the build, or pull its environment artifact by digest"
        )
        raise RegistryError(msg)
    if len(matching) > 1:
        msg = (
            f"{what} pins environment {want}, and several artifacts hold it "
            f"({', '.join(matching)}); refused: pull one of them by digest"
        )
        raise RegistryError(msg)
    return Pinned(image, matching[0], want, size, unpacked, imports)


def _is_env(descriptor: dict[str, Any], artifact_type: str) -> bool:
    return descriptor.get("artifactType") == artifact_type


def no_environment(client: Any, ref: Any, digest: str) -> str:
    """The message for an image with no environment: where its environment layer is fixed
    (label ``org.envbuild.prefix``, escaped), if it has one."""
    fixed = _layer_prefix(client, ref, digest)
    where = (
        f"; its image holds the environment as a layer fixed at {printable(fixed)}, which cannot "
        "be moved to another path (run the image: docker run / apptainer build docker://...)"
        if fixed
        else ""
    )
    return (
        f"{ref}: no environment in it: no envbuild environment artifact refers to "
        f"image {digest}{where}; publish the relocatable tarball with "
        "`doit publish env=NAME`, or name the environment artifact itself"
    )


def _layer_prefix(client: Any, ref: Any, digest: str) -> str:
    """The prefix an envbuild image's environment layer is fixed at (label
    ``org.envbuild.prefix``), or "" for any other image."""
    import io

    try:
        manifest = parse_json(client.get_manifest(ref.with_target(digest))[0], str(ref))
        config = manifest.get("config") or {}
        if not isinstance(config.get("size"), int) or config["size"] > 1 << 20:
            return ""
        buf = io.BytesIO()
        client.fetch_blob(ref.repository, digest_of(config.get("digest"), ""), buf, config["size"])
        labels = (parse_json(buf.getvalue(), str(ref)).get("config") or {}).get("Labels") or {}
    except (RegistryError, ValueError, KeyError, AttributeError, TypeError):
        return ""
    return str(labels.get("org.envbuild.prefix", ""))
