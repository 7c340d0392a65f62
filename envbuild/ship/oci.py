"""OCI image layouts, read and written without an engine, byte for byte reproducibly.

An image is a config, a manifest and layers, each a blob named by its sha256
(https://github.com/opencontainers/image-spec: ``image-layout.md``, ``manifest.md``,
``config.md``, ``layer.md``). This module writes an *image layout archive*: a tar holding
``oci-layout``, ``index.json`` and ``blobs/sha256/<hex>``, which ``skopeo copy
oci-archive:...``, ``podman load`` and ``docker load`` (25+) read. It also holds Docker's
``manifest.json``, as ``docker save`` of Docker 25+ writes it, so that older engines (20.10)
``docker load`` it too. A registry push (``oras``, ``skopeo copy oci-archive:...
docker://...``) takes the same blobs unchanged.

Reproducible: every tar header (the archive's and the layers') has owner 0:0 without names,
a normalised mode and the given mtime; members are written in a fixed order; layers are
gzip-compressed with a fixed header (mtime 0, no file name) in independent blocks
(conda-pack's parallel writer: the same bytes whatever the thread count). Blob names are
only known once a blob is written, so the archive reserves each blob's tar header, streams
the blob, then writes the header in place: the environment layer is written once, never
copied.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from envbuild.errors import ImageError
from envbuild.recipe.validate import display
from envbuild.util.mediatypes import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)

GZIP_LEVEL = 1  # go-containerregistry (crane, ko) compresses layers at gzip.BestSpeed too
_BLOCK = tarfile.BLOCKSIZE


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor: ``media_type``, ``digest`` (``sha256:<hex>``), ``size``
    in bytes, and for layers ``diff_id`` (the digest of the uncompressed tar)."""

    media_type: str
    digest: str
    size: int
    diff_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def canonical(data: Any) -> bytes:
    """``data`` as compact JSON with sorted keys: the same bytes for the same content."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _header(name: str, size: int, mtime: int, *, kind: bytes = tarfile.REGTYPE,
            mode: int = 0o644, linkname: str = "") -> bytes:  # fmt: skip
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type, info.linkname = size, mtime, mode, kind, linkname
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``sink``."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)  # a copy: the parallel gzip writer keeps buffers until compressed
        self.sha.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """One member of a layer: ``path`` inside the image (no leading ``/``); ``kind`` one of
    ``file``, ``dir``, ``link`` (symlink); a file's bytes come from ``data`` or ``source``."""

    path: str
    kind: str
    source: str = ""
    data: bytes | None = None
    mode: int = 0o644
    target: str = ""  # a symlink's target
    uid: int = 0
    gid: int = 0


def parents(paths: list[str]) -> list[str]:
    """Every directory above ``paths`` (``a/b/c`` -> ``a``, ``a/b``), sorted."""
    out: set[str] = set()
    for p in paths:
        parts = p.split("/")[:-1]
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(out)


def write_layer_tar(out: IO[bytes], entries: list[Entry], mtime: int) -> None:
    """Write ``entries`` as a layer tar to ``out``: sorted by path components, owners as
    given (names empty), modes normalised (files 0644, or 0755 if any execute bit; dirs 0755
    unless given), every mtime ``mtime``; a file is stored as itself, never as a hard link."""
    for e in sorted(entries, key=lambda e: e.path.split("/")):
        info = tarfile.TarInfo(e.path)
        info.mtime, info.uid, info.gid = mtime, e.uid, e.gid
        info.uname = info.gname = ""
        if e.kind == "dir":
            info.type, info.mode = tarfile.DIRTYPE, e.mode if e.mode != 0o644 else 0o755
            out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        elif e.kind == "link":
            info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, e.target
            out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        else:
            info.mode = 0o755 if e.mode & 0o111 else 0o644
            with _open_entry(e) as src:
                info.size = src.seek(0, os.SEEK_END)
                src.seek(0)
                out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
                copied = _copy(src, out)
            if copied != info.size:
                msg = f"{e.source}: changed size while it was written into the image"
                raise ImageError(msg)
            out.write(b"\0" * (-info.size % _BLOCK))
    out.write(b"\0" * (2 * _BLOCK))


@contextlib.contextmanager
def _open_entry(e: Entry) -> Iterator[IO[bytes]]:
    if e.data is not None:
        yield io.BytesIO(e.data)
    else:
        with open(e.source, "rb") as f:
            yield f


def _copy(src: IO[bytes], dst: IO[bytes]) -> int:
    n = 0
    while chunk := src.read(1 << 20):
        dst.write(chunk)
        n += len(chunk)
    return n


def write_gzip_layer(out: IO[bytes], write_tar: Callable[[IO[bytes]], None],
                     level: int = GZIP_LEVEL) -> Descriptor:  # fmt: skip
    """Compress the tar that ``write_tar`` writes into ``out`` (gzip, header mtime 0, no
    name, independent 256 KiB blocks on every core); returns the layer's descriptor with its
    ``diff_id``."""
    from conda_pack.formats import ParallelGzipFileWriter

    compressed = _Hashing(out)
    gz = ParallelGzipFileWriter(compressed, compresslevel=level, n_threads=os.cpu_count() or 1,
                                mtime=0)  # fmt: skip
    plain = _Hashing(gz)
    buffered = io.BufferedWriter(plain, 1 << 20)
    try:
        write_tar(buffered)
        buffered.flush()
    finally:
        gz.close()
    return Descriptor(OCI_LAYER_GZIP, compressed.digest(), compressed.size, plain.digest())


class ArchiveWriter:
    """An OCI image layout archive being written to ``path`` (a seekable file): directory
    entries, then blobs in the order added, then ``index.json``, ``manifest.json``."""

    def __init__(self, f: IO[bytes], mtime: int) -> None:
        self.f, self.mtime = f, mtime
        self.blobs: set[str] = set()
        self.add_file("oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
        for d in ("blobs/", "blobs/sha256/"):
            self.f.write(_header(d, 0, mtime, kind=tarfile.DIRTYPE, mode=0o755))

    def add_file(self, name: str, data: bytes) -> None:
        self.f.write(_header(name, len(data), self.mtime))
        self.f.write(data + b"\0" * (-len(data) % _BLOCK))

    def add_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest not in self.blobs:
            self.blobs.add(digest)
            self.add_file(blob_name(digest), data)
        return Descriptor(media_type, digest, len(data))

    def stream_blob(self, write: Callable[[IO[bytes]], Descriptor]) -> Descriptor:
        """Add the blob that ``write`` writes (returning its descriptor): its header is
        reserved, then written once the digest is known (a name of 77 characters, so one
        512-byte header)."""
        start = self.f.tell()
        self.f.write(b"\0" * _BLOCK)
        desc = write(self.f)
        end = self.f.tell()
        if end - start - _BLOCK != desc.size:
            msg = f"blob {desc.digest}: wrote {end - start - _BLOCK} bytes, expected {desc.size}"
            raise ImageError(msg)
        header = _header(blob_name(desc.digest), desc.size, self.mtime)
        assert len(header) == _BLOCK, header
        self.f.seek(start)
        self.f.write(header)
        self.f.seek(end)
        self.f.write(b"\0" * (-desc.size % _BLOCK))
        self.blobs.add(desc.digest)
        return desc

    def copy_blob(self, src: IO[bytes], desc: Descriptor) -> None:
        """Add a blob from ``src`` (a base layer), checking its digest as it is copied."""
        if desc.digest in self.blobs:
            return

        def write(out: IO[bytes]) -> Descriptor:
            h = _Hashing(out)
            _copy(src, h)  # type: ignore[arg-type]
            if h.digest() != desc.digest or h.size != desc.size:
                msg = (
                    f"blob {desc.digest} ({desc.size} bytes) of the base image has digest "
                    f"{h.digest()} ({h.size} bytes): the base is corrupt"
                )
                raise ImageError(msg)
            return desc

        self.stream_blob(write)

    def finish(self) -> None:
        self.f.write(b"\0" * (2 * _BLOCK))
        pad = -self.f.tell() % tarfile.RECORDSIZE
        self.f.write(b"\0" * pad)


def blob_name(digest: str) -> str:
    algo, hexdigest = digest.split(":", 1)
    return f"blobs/{algo}/{hexdigest}"


@dataclass(frozen=True, slots=True)
class Image:
    """An image read from a layout: its manifest ``digest``, ``manifest`` and ``config``
    (parsed JSON) and layer descriptors."""

    digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    layers: tuple[Descriptor, ...]


class Layout:
    """A local OCI image layout to read: a directory, or an archive of one (tar)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: tarfile.TarFile | None = None
        if path.is_file():
            try:
                self._tar = tarfile.open(path, "r:")  # noqa: SIM115 -- closed by close()
            except (tarfile.TarError, OSError) as e:
                msg = f"{display(path)}: not an OCI image layout archive (a tar): {e}"
                raise ImageError(msg) from None
        elif not path.is_dir():
            msg = f"{display(path)} does not exist"
            raise ImageError(msg)

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def __enter__(self) -> Layout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stream(self, name: str) -> IO[bytes]:
        """A fresh stream of member ``name`` (``index.json``, ``blobs/sha256/<hex>``; an
        archive's ``./name`` too), read where it lies (never copied); ImageError if absent."""
        try:
            if self._tar is None:
                return (self.path / name).open("rb")
            for candidate in (name, f"./{name}"):
                with contextlib.suppress(KeyError):
                    member = self._tar.extractfile(candidate)
                    if member is not None:
                        return member
        except OSError:
            pass
        msg = f"{display(self.path)}: no {name}: not an OCI image layout"
        raise ImageError(msg)

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """:meth:`stream`, closed after the block."""
        with self.stream(name) as f:
            yield f

    def open_blob(self, digest: str) -> IO[bytes]:
        """A fresh stream of blob ``digest`` (``sha256:<hex>``)."""
        return self.stream(blob_name(digest))

    def read_blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as f:
            return f.read()

    def read_json(self, name: str, digest: str = "") -> Any:
        with self.open(name) as f:
            data = f.read(64 << 20)
        if digest and "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            msg = f"{display(self.path)}: {name} does not match its digest {digest}"
            raise ImageError(msg)
        try:
            return json.loads(data)
        except ValueError as e:
            msg = f"{display(self.path)}: {name} is not JSON: {e}"
            raise ImageError(msg) from None

    def image(self, architecture: str) -> Image:
        """The image for ``linux/<architecture>``: the only manifest in ``index.json``, or
        the one (or the index entry's index) naming that platform. Digests are checked."""
        index = self.read_json("index.json")
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not manifests:
            msg = f"{display(self.path)}: index.json lists no manifests: not an OCI image layout"
            raise ImageError(msg)
        desc = _pick(manifests, architecture, self.path)
        doc = self.read_json(blob_name(desc["digest"]), desc["digest"])
        if doc.get("mediaType") in (OCI_INDEX, DOCKER_LIST) or "manifests" in doc:
            desc = _pick(doc["manifests"], architecture, self.path)
            doc = self.read_json(blob_name(desc["digest"]), desc["digest"])
        if doc.get("mediaType", OCI_MANIFEST) not in (OCI_MANIFEST, DOCKER_MANIFEST):
            kind = doc.get("mediaType")
            msg = f"{display(self.path)}: {desc['digest']} is a {kind}, not an image manifest"
            raise ImageError(msg)
        cfg = doc["config"]
        config = self.read_json(blob_name(cfg["digest"]), cfg["digest"])
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(doc.get("layers", [])):
            msg = f"{display(self.path)}: the config's diff_ids do not match the manifest's layers"
            raise ImageError(msg)
        layers = tuple(
            Descriptor(d["mediaType"], d["digest"], int(d["size"]), diff)
            for d, diff in zip(doc["layers"], diff_ids, strict=True)
        )
        return Image(desc["digest"], doc, config, layers)


def _pick(manifests: list[dict[str, Any]], architecture: str, path: Path) -> dict[str, Any]:
    if len(manifests) == 1:
        return manifests[0]
    for m in manifests:
        plat = m.get("platform") or {}
        if plat.get("os") == "linux" and plat.get("architecture") == architecture:
            return m
    msg = f"{display(path)}: no image for linux/{architecture} among {len(manifests)} manifests"
    raise ImageError(msg)


def archive_digest(path: Path) -> str:
    """The manifest digest recorded in ``index.json`` of the archive ``path`` (one image)."""
    with Layout(path) as layout:
        index = layout.read_json("index.json")
    return str(index["manifests"][0]["digest"])
