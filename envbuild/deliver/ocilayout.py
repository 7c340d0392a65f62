"""Read an OCI image layout, as a directory or as a tar archive of one (``oci-archive``):
``oci-layout``, ``index.json`` and ``blobs/<alg>/<hex>``
(https://github.com/opencontainers/image-spec/blob/main/image-layout.md). Any writer's layout
will do (skopeo's, ours, another tool's); nothing here knows how it was made.

Blobs are read where they lie: from the directory, or from their place inside the tar (an
uncompressed archive can be read at any offset), so an image of several hundred MB is never
copied before it is pushed.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from envbuild.errors import RegistryError

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


@dataclass(frozen=True, slots=True)
class Blob:
    """One content-addressed blob of a layout: ``digest`` (``sha256:<hex>``), ``size`` in
    bytes, ``media_type`` as the descriptor that named it says."""

    digest: str
    size: int
    media_type: str


class Layout:
    """An OCI image layout at ``path`` (a directory, or a tar file holding one). Raises
    RegistryError naming the path if it is not one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if path.is_dir():
            names = {"oci-layout": path / "oci-layout", "index.json": path / "index.json"}
            missing = [n for n, p in names.items() if not p.is_file()]
        elif path.is_file():
            try:
                # uncompressed, so members can be sought; closed by close()
                self._tar = tarfile.open(path, "r:")  # noqa: SIM115
            except (tarfile.TarError, OSError) as e:
                msg = f"{path}: not an OCI image layout archive (an uncompressed tar): {e}"
                raise RegistryError(msg) from None
            for m in self._tar.getmembers():
                if m.isfile():
                    self._members[m.name.removeprefix("./")] = m
            missing = [n for n in ("oci-layout", "index.json") if n not in self._members]
        else:
            msg = f"{path}: no such OCI image layout (a directory or an archive of one)"
            raise RegistryError(msg)
        if missing:
            msg = f"{path}: not an OCI image layout (no {', '.join(missing)})"
            raise RegistryError(msg)
        self.index: dict[str, Any] = json.loads(self.read_file("index.json"))

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def __enter__(self) -> Layout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _blob_name(self, digest: str) -> str:
        alg, _, hexpart = digest.partition(":")
        return f"blobs/{alg}/{hexpart}"

    def read_file(self, name: str) -> bytes:
        with self.open_file(name) as f:
            return f.read()

    def open_file(self, name: str) -> IO[bytes]:
        if self._tar is None:
            try:
                return (self.path / name).open("rb")
            except OSError as e:
                msg = f"{self.path}: {name} is missing from the layout ({e.strerror})"
                raise RegistryError(msg) from None
        member = self._members.get(name)
        f = self._tar.extractfile(member) if member is not None else None
        if f is None:
            msg = f"{self.path}: {name} is missing from the layout archive"
            raise RegistryError(msg)
        return f

    def open_blob(self, digest: str) -> IO[bytes]:
        """A fresh stream of blob ``digest``."""
        return self.open_file(self._blob_name(digest))

    def read_blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as f:
            return f.read()

    def image(self) -> dict[str, Any]:
        """The one manifest descriptor ``index.json`` lists (an image, or an index of
        images). Raises RegistryError if it lists none or several."""
        entries = self.index.get("manifests") or []
        if len(entries) != 1:
            msg = (
                f"{self.path}: index.json lists {len(entries)} manifests; envbuild publishes "
                "a layout holding exactly one image"
            )
            raise RegistryError(msg)
        return dict(entries[0])

    def walk(self, descriptor: dict[str, Any]) -> list[tuple[Blob, bool]]:
        """Everything ``descriptor`` needs on a registry, children first: (blob, is a
        manifest). Layers and configs precede their manifest; images precede their index."""
        data = self.read_blob(descriptor["digest"])
        manifest = json.loads(data)
        media = descriptor.get("mediaType") or manifest.get("mediaType", "")
        out: list[tuple[Blob, bool]] = []
        if media in INDEX_TYPES:
            for child in manifest.get("manifests", []):
                out += self.walk(child)
        else:
            for d in (manifest["config"], *manifest.get("layers", [])):
                out.append((Blob(d["digest"], int(d["size"]), d.get("mediaType", "")), False))
        out.append((Blob(descriptor["digest"], len(data), media), True))
        return out
