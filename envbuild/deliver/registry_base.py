"""A base image named by registry reference and digest (``[image] base =
"REGISTRY/debian@sha256:..."``), pulled once into a cache as an OCI image layout directory.

Everything is checked against the digest the reference names: the manifest (or the index,
then this machine's image in it) and every blob, before the layout is moved into place. A
cached layout is used without asking the registry again: its name is the digest, so its
content cannot go stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from envbuild.errors import RegistryError
from envbuild.project import Project
from envbuild.util.fs import atomic_write, staged_dir
from envbuild.util.reference import is_registry_ref, parse_reference


def cached_layout(ref: str, cache_dir: Path) -> Path:
    """Where :func:`fetch_base` keeps ``ref`` (``cache_dir/sha256-<hex>``)."""
    parsed = parse_reference(ref)
    if not parsed.digest:
        msg = (
            f"base image {ref!r}: name it by digest (REGISTRY/NAME@sha256:...), so that every "
            "build uses the same base; `skopeo inspect docker://REF` shows the digest"
        )
        raise RegistryError(msg)
    return cache_dir / parsed.digest.replace(":", "-")


def fetch_base(ref: str, cache_dir: Path, insecure: bool = False) -> Path:
    """The OCI image layout directory of base image ``ref`` (by digest), fetched into
    ``cache_dir`` the first time. For an index, the image for this machine (linux and its
    architecture) is fetched and the layout's ``index.json`` names it. Raises RegistryError
    for a reference without digest, a registry that fails, or content that does not match its
    digest (nothing is left in the cache then)."""
    from envbuild.deliver.descriptor import manifest
    from envbuild.deliver.pull import for_this_machine  # the same choice as envbuild pull
    from envbuild.deliver.registry import connect

    final = cached_layout(ref, cache_dir)
    if (final / "index.json").is_file():
        _check_cached(ref, final)
        return final
    parsed = parse_reference(ref)
    client = connect(parsed.host, insecure)
    with staged_dir(final) as tmp:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)

        data, media, digest = client.get_manifest(parsed)  # checked against parsed.digest
        doc = manifest(data, client.where(f"fetch manifest {parsed}"))
        (blobs / digest.split(":")[1]).write_bytes(data)
        if doc.is_index:
            chosen = for_this_machine([d.to_json() for d in doc.manifests])
            if chosen is None:
                msg = f"base image {ref}: the index has no image for this machine"
                raise RegistryError(msg)
            data, media, digest = client.get_manifest(parsed.with_target(chosen["digest"]))
            doc = manifest(data, client.where(f"fetch manifest {digest}"))
            (blobs / digest.split(":")[1]).write_bytes(data)
        if doc.is_index or doc.config is None:
            msg = f"base image {ref}: {digest} is an index inside an index; name an image"
            raise RegistryError(msg)
        for d in (doc.config, *doc.layers):
            with (blobs / d.digest.split(":")[1]).open("wb") as f:
                client.fetch_blob(parsed.repository, d.digest, f, d.size)
        descriptor = {
            "mediaType": media,
            "digest": digest,
            "size": len(data),
            "annotations": {"org.opencontainers.image.ref.name": ref},
        }
        atomic_write(tmp / "oci-layout", '{"imageLayoutVersion": "1.0.0"}')
        atomic_write(
            tmp / "index.json", json.dumps({"schemaVersion": 2, "manifests": [descriptor]})
        )
    return final


def ensure_base(project: Project) -> Path | None:
    """Fetch the project's ``[image] base`` into ``[paths] base_cache`` if it names a registry
    and is not there yet (:func:`fetch_base`); the stages that write an image call this first.
    ``[publish] insecure`` applies when the base is on the publish registry's host. Returns
    the cached layout directory, or None for a base that is a local path. Raises
    RegistryError (the registry, the step, the digests)."""
    ref = project.image_base
    if not ref or not is_registry_ref(ref):
        return None
    host = parse_reference(ref).host
    insecure = project.publish_insecure and project.publish_registry.split("/", 1)[0] == host
    return fetch_base(ref, project.path("base_cache"), insecure)


def _check_cached(ref: str, layout: Path) -> None:
    """The cached layout must still be what ``ref``'s digest names: the manifest (or index)
    blob of that digest, and ``index.json`` naming that manifest or one its index lists, each
    blob hashing to its name (layers are checked as the image is written). Raises
    RegistryError naming the directory otherwise (tampered with, or another image put there)."""
    import hashlib

    digest = parse_reference(ref).digest
    blobs = layout / "blobs" / "sha256"

    def blob(d: str) -> bytes:
        data = (blobs / d.split(":", 1)[1]).read_bytes()
        if "sha256:" + hashlib.sha256(data).hexdigest() != d:
            raise ValueError(d)
        return data

    try:
        top = json.loads(blob(digest))
        allowed = {digest} | {str(m.get("digest")) for m in top.get("manifests", [])}
        named = [str(m["digest"]) for m in json.loads((layout / "index.json").read_text())
                 ["manifests"]]  # fmt: skip
        if not named or any(d not in allowed for d in named):
            raise ValueError(named)
        for d in named:
            blob(d)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        msg = (
            f"the cached base {layout} is not the image {digest} that [image] base names "
            f"({type(e).__name__}: it was altered, or another image was put there); delete that "
            "directory and the next run fetches it again"
        )
        raise RegistryError(msg) from None
