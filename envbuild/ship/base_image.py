"""The base image: an input named by path and digest, never by a tag that moves.

``[image] base`` in ``envbuild.toml`` names a local OCI image layout or its archive,
optionally pinned, ``"build/base/bookworm.oci.tar@sha256:<hex>"`` (the ``NAME@DIGEST`` form
of image references). The base's manifest digest is checked against the pin before anything is
written, recorded with the image and compared by the docker stage's up-to-date check, so a
changed base rebuilds the image.

It may also name a registry, by digest only: ``"REGISTRY/NAMESPACE/debian@sha256:<hex>"``
(a first component with a dot, a port or ``localhost``, as Docker tells hosts from paths).
:mod:`envbuild.deliver.registry_base` pulls it once, checks every blob against the digest and
keeps it as a layout directory named by that digest (``[paths] base_cache``); from then on it
is used like a local one, with no registry asked again.

No registry is needed: :func:`from_rootfs` turns a root filesystem tar (``debootstrap
--variant=minbase``, as ``scripts/services.sh`` makes it) into a one-layer OCI archive,
deterministically (the same tar gives the same digest)::

    python -m envbuild.ship.base_image ROOTFS.tar build/base/bookworm-minbase.oci.tar
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from envbuild.errors import ImageError
from envbuild.recipe.validate import display
from envbuild.ship import oci
from envbuild.util.fs import clean_temporaries, staged_file
from envbuild.util.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from envbuild.util.reference import is_registry_ref, split_pinned


def local_base(value: str, cache_dir: Path) -> tuple[str, str]:
    """Where ``[image] base`` ``value`` is on this machine: ``(path, pin)`` as :func:`parse`
    gives them for a path; for a registry reference, the layout directory it is cached in
    (``cache_dir/sha256-<hex>``, there once fetched) and no pin (every blob was checked
    against the reference's digest when it was fetched). Raises ImageError for a registry
    reference without a digest."""
    if not is_registry_ref(value):
        return parse(value)
    pinned = split_pinned(value)
    if pinned is None:
        msg = (
            f"envbuild.toml: [image] base: {value!r}: name a registry base by digest, "
            "REGISTRY/NAME@sha256:<64 hex> (`skopeo inspect docker://REF` prints it), so that "
            "every build uses the same base"
        )
        raise ImageError(msg)
    return str(cache_dir / pinned[1].replace(":", "-")), ""


def parse(value: str) -> tuple[str, str]:
    """``"PATH"`` or ``"PATH@sha256:<64 hex>"`` -> (path, digest or "")."""
    pinned = split_pinned(value)
    if pinned:
        return pinned
    if "@sha256:" in value or "@" in value.rsplit("/", 1)[-1]:
        msg = (
            f"envbuild.toml: [image] base: {value!r}: a pinned base is PATH@sha256:<64 lowercase "
            "hex>, the manifest digest (`skopeo inspect oci-archive:PATH` prints it as Digest)"
        )
        raise ImageError(msg)
    return value, ""


@contextlib.contextmanager
def open_base(path: Path, digest: str, architecture: str) -> Iterator[tuple[oci.Layout, oci.Image]]:
    """Open the base at ``path`` and select its ``linux/<architecture>`` image; if ``digest``
    is given, the manifest must have it. Raises ImageError naming the path, the digests and
    the fix."""
    if not path.exists():
        msg = (
            f"base image {display(path)} does not exist ([image] base in envbuild.toml); "
            "make it with `python -m envbuild.ship.base_image ROOTFS.tar PATH` or copy one there "
            "(`skopeo copy docker://debian:bookworm-slim oci-archive:PATH`)"
        )
        raise ImageError(msg)
    with oci.Layout(path) as layout:
        image = layout.image(architecture)
        found = (image.config.get("os"), image.config.get("architecture"))
        if found != ("linux", architecture):
            msg = (
                f"base image {display(path)} is for {found[0]}/{found[1]}, not linux/"
                f"{architecture}; use a base for the environment's platform"
            )
            raise ImageError(msg)
        if digest and image.digest != digest:
            msg = (
                f"base image {display(path)} has manifest digest {image.digest}, but [image] base "
                f"in envbuild.toml pins {digest}; if the base was changed on purpose, pin the new "
                "digest there"
            )
            raise ImageError(msg)
        yield layout, image


def manifest_digest(path: Path, architecture: str = "amd64") -> str:
    """The manifest digest of the base at ``path`` ("" if it cannot be read): what the up-to-
    date check compares, without reading any layer."""
    try:
        with oci.Layout(path) as layout:
            return layout.image(architecture).digest
    except (ImageError, OSError, KeyError, TypeError, AttributeError):
        return ""


def from_rootfs(rootfs: Path, output: Path, architecture: str = "amd64", epoch: int = 0) -> str:
    """Write ``output``, a one-layer OCI image archive of the root filesystem tar ``rootfs``
    (its members as they are, gzip-compressed deterministically). Returns the manifest
    digest. Raises ImageError if ``rootfs`` is not a tar."""
    import tarfile

    if not rootfs.is_file():
        msg = f"{display(rootfs)}: no such file (a root filesystem tar, e.g. from debootstrap)"
        raise ImageError(msg)
    if not tarfile.is_tarfile(rootfs):
        msg = f"{display(rootfs)}: not a tar of a root filesystem"
        raise ImageError(msg)
    clean_temporaries(output)
    with staged_file(output) as tmp, tmp.open("wb") as f:
        arc = oci.ArchiveWriter(f, epoch)

        def copy_tar(out: IO[bytes]) -> None:
            with rootfs.open("rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)

        layer = arc.stream_blob(lambda out: oci.write_gzip_layer(out, copy_tar))
        created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        config = {
            "architecture": architecture,
            "os": "linux",
            "created": created,
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["bash"],
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [{"created": created, "created_by": f"rootfs {rootfs.name}"}],
        }
        cfg = arc.add_blob(oci.canonical(config), OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg.to_json(),
                    "layers": [layer.to_json()]}  # fmt: skip
        man = arc.add_blob(oci.canonical(manifest), OCI_MANIFEST)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [man.to_json()]}
        arc.add_file("index.json", oci.canonical(index))
        arc.finish()
    return man.digest


if __name__ == "__main__":  # python -m envbuild.ship.base_image ROOTFS.tar OUTPUT.oci.tar
    if len(sys.argv) != 3:
        sys.exit("usage: python -m envbuild.ship.base_image ROOTFS.tar OUTPUT.oci.tar")
    try:
        print(from_rootfs(Path(sys.argv[1]), Path(sys.argv[2])))
    except (ImageError, OSError) as e:  # one line, no traceback
        sys.exit(f"envbuild.ship.base_image: {e}")
