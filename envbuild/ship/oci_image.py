"""The environment's image, written without an engine: ``dist/<name>-<platform>.oci.tar``.

The image is the base image's layers unchanged, plus two layers:

* the environment at its final prefix (``docker.prefix``, default ``/opt/env``), packed by
  conda-pack with ``dest_prefix`` (https://conda.github.io/conda-pack/: prefixes rewritten at
  pack time, so no ``conda-unpack`` runs in the image), owned by root and not writable by the
  user, the build's bytecode included, the SBOM at ``<prefix>/etc/envbuild/sbom.cdx.json``;
* the non-root user: the base's ``/etc/passwd`` and ``/etc/group`` with the user added, and
  its home directory.

Its config runs as that user (numeric ``uid:gid``, so Kubernetes' ``runAsNonRoot`` can check
it), the environment first on ``PATH`` and the recipe's ``variables`` set. Labels and
annotations name the recipe and the lock, never a build id or the clock: ``created`` and every
mtime are the lock's epoch (:func:`envbuild.lock.epoch.lock_epoch`), so the same lock and base give
the same manifest digest on any machine, at any path.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

from envbuild.errors import ImageError
from envbuild.recipe.validate import display
from envbuild.ship import oci
from envbuild.ship.relocate import recompile_relocated, relocate_records
from envbuild.util.fs import clean_temporaries, staged_file
from envbuild.util.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST

ARCHITECTURES = {
    "linux-64": "amd64",
    "linux-aarch64": "arm64",
    "linux-ppc64le": "ppc64le",
    "linux-s390x": "s390x",
    "linux-armv7l": "arm",
}
LABEL_RECIPE = "org.envbuild.recipe"
LABEL_LOCK = "org.envbuild.lock-sha256"
LABEL_PREFIX = "org.envbuild.prefix"
LABEL_IMPORTS = "org.envbuild.smoke.imports"
# What the image pins of its build (manifest annotations only; a digest pins them all)
ANN_ENV_DIGEST = "org.envbuild.environment.digest"  # sha256:<hex> of the tarball file
ANN_ENV_SIZE = "org.envbuild.environment.size"  # its bytes
ANN_ENV_UNPACKED = "org.envbuild.environment.unpacked-size"  # bytes of its regular files
ANN_SBOM_DIGEST = "org.envbuild.sbom.digest"  # sha256:<hex> of the published SBOM file


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What goes into the image besides the files: recipe ``name``, conda ``platform``,
    ``prefix`` in the image, non-root ``user``/``uid``, ``lock_sha256``, ``epoch`` (seconds),
    smoke ``imports`` (a label, for consumers), ``variables``, ``source`` (a URL for
    ``org.opencontainers.image.source``; empty: none); ``pins``: further manifest
    annotations, (key, value), naming the build's tarball and SBOM by digest
    (:data:`ANN_ENV_DIGEST` ...: what ``envbuild pull`` installs when given this image)."""

    name: str
    platform: str
    prefix: str
    user: str
    uid: int
    lock_sha256: str
    epoch: int
    imports: tuple[str, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    source: str = ""
    extra_files: tuple[tuple[str, bytes], ...] = field(default=())  # (path in prefix, bytes)
    pins: tuple[tuple[str, str], ...] = ()

    @property
    def architecture(self) -> str:
        try:
            return ARCHITECTURES[self.platform]
        except KeyError:
            msg = f"images are Linux images; platform {self.platform} has none"
            raise ImageError(msg) from None

    @property
    def created(self) -> str:
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def tag(self) -> str:
        return f"envbuild/{self.name}:{self.lock_sha256[:12]}"


@dataclass(frozen=True, slots=True)
class WrittenImage:
    """An image archive at ``path``: manifest ``digest``, archive ``size``, the base's
    manifest digest and the bytes of the environment's files (``env_bytes``)."""

    path: Path
    digest: str
    size: int
    base_digest: str
    env_bytes: int


def image_path(dist: Path, name: str, platform: str) -> Path:
    """``<dist>/<name>-<platform>.oci.tar``."""
    return dist / f"{name}-{platform}.oci.tar"


class _Collect:
    """conda-pack's archive interface (``add``, ``add_bytes``), collecting layer entries
    under ``root`` instead of writing: the layer is written sorted once all are known."""

    arcroot = ""

    def __init__(self, root: str, scratch: str) -> None:
        self.root, self.scratch = root, f"{scratch}/"
        self.entries: dict[str, oci.Entry] = {}

    def add(self, source: str, target: str) -> None:
        path = f"{self.root}/{target}"
        st = os.lstat(source)
        if stat.S_ISLNK(st.st_mode):
            self.entries[path] = oci.Entry(path, "link", target=os.readlink(source))
        elif stat.S_ISDIR(st.st_mode):
            self.entries[path] = oci.Entry(path, "dir")
        elif source.startswith(self.scratch):  # read now: its directory goes before we write
            data = Path(source).read_bytes()
            self.entries[path] = oci.Entry(path, "file", data=data, mode=st.st_mode)
        else:
            self.entries[path] = oci.Entry(path, "file", source=source, mode=st.st_mode)

    def add_bytes(self, source: str, data: bytes, target: str) -> None:
        path = f"{self.root}/{target}"
        if os.path.isfile(source) and Path(source).read_bytes() == data:
            self.add(source, target)  # a placeholder that was not in it: nothing rewritten
            return
        mode = os.stat(source).st_mode if os.path.exists(source) else 0o644
        self.entries[path] = oci.Entry(path, "file", data=data, mode=mode)


def env_entries(prefix: Path, spec: ImageSpec) -> list[oci.Entry]:
    """The environment layer's entries: conda-pack's files of ``prefix`` relocated to
    ``spec.prefix`` (with the build's bytecode and the variables' activation scripts), the
    ``extra_files`` and every parent directory. Raises ImageError if conda-pack refuses."""
    import conda_pack
    from conda_pack.core import Packer

    from envbuild.ship.pack import activation_files, bytecode_files

    root = spec.prefix.strip("/")
    if not root:
        msg = f"{spec.name}: docker.prefix: '/' would put the environment over the base's files"
        raise ImageError(msg)
    try:
        env = conda_pack.CondaEnv.from_prefix(str(prefix))
        files = [*env.files, *bytecode_files(prefix, {f.target for f in env.files})]
        with tempfile.TemporaryDirectory() as scratch:
            collect = _Collect(root, scratch)  # sources elsewhere (conda-pack takes a file
            # hard-linked from the package cache from there) are read when the layer is
            files += activation_files(spec.variables, Path(scratch))
            packer = Packer(str(prefix), collect, spec.prefix, None)
            for f in files:
                packer.add(f)
            packer.finish()
    except conda_pack.CondaPackException as e:
        msg = f"conda-pack failed for {display(prefix)}: {e}"
        raise ImageError(msg) from None
    recompile_relocated(collect.entries, root, prefix)
    relocate_records(collect.entries, root, spec.created)
    for rel, data in spec.extra_files:
        collect.entries[f"{root}/{rel}"] = oci.Entry(f"{root}/{rel}", "file", data=data)
    entries = list(collect.entries.values())
    have = {e.path for e in entries}
    entries += [oci.Entry(d, "dir") for d in oci.parents(sorted(have)) if d not in have]
    return entries


def _base_file(layout: oci.Layout, base: oci.Image, path: str) -> bytes:
    """The content of ``path`` in the base image's filesystem (the topmost layer that has
    it), or empty bytes."""
    import tarfile
    import zlib

    wanted = {path, f"./{path}"}
    for layer in reversed(base.layers):
        try:
            found = _find_in_layer(layout, layer, wanted)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
            msg = f"{display(layout.path)}: base layer {layer.digest} cannot be read: {e}"
            raise ImageError(msg) from None
        if found is not None:
            return found
    return b""


def _find_in_layer(layout: oci.Layout, layer: oci.Descriptor, wanted: set[str]) -> bytes | None:
    import gzip
    import tarfile

    with layout.open(oci.blob_name(layer.digest)) as raw:
        gz = "gzip" in layer.media_type
        stream = cast("IO[bytes]", gzip.GzipFile(fileobj=raw)) if gz else raw
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for m in tf:
                if m.name in wanted and m.isfile():
                    f = tf.extractfile(m)
                    return f.read() if f else b""
    return None


def user_entries(layout: oci.Layout, base: oci.Image, spec: ImageSpec) -> list[oci.Entry]:
    """The user layer: ``/etc/passwd`` and ``/etc/group`` of the base plus ``spec.user``
    (uid = gid = ``spec.uid``, home ``/home/<user>``, shell ``/bin/sh``), and its home."""
    passwd = _base_file(layout, base, "etc/passwd").decode()
    group = _base_file(layout, base, "etc/group").decode()
    names = {ln.split(":", 1)[0] for ln in passwd.splitlines()}
    if spec.user not in names:
        passwd = passwd.rstrip("\n") + "\n" if passwd.strip() else "root:x:0:0:root:/root:/bin/sh\n"
        passwd += f"{spec.user}:x:{spec.uid}:{spec.uid}::/home/{spec.user}:/bin/sh\n"
    if spec.user not in {ln.split(":", 1)[0] for ln in group.splitlines()}:
        group = group.rstrip("\n") + "\n" if group.strip() else "root:x:0:\n"
        group += f"{spec.user}:x:{spec.uid}:\n"
    return [
        oci.Entry("etc", "dir"),
        oci.Entry("etc/passwd", "file", data=passwd.encode()),
        oci.Entry("etc/group", "file", data=group.encode()),
        oci.Entry("home", "dir"),
        oci.Entry(f"home/{spec.user}", "dir", mode=0o755, uid=spec.uid, gid=spec.uid),
    ]


def labels(spec: ImageSpec) -> dict[str, str]:
    """The image's labels, also its manifest's annotations: recipe, lock sha256, prefix, smoke
    imports, and ``org.opencontainers.image.*`` (title, version = the tag's lock prefix,
    revision = the lock sha256, created = the epoch; source when configured)."""
    out = {
        LABEL_RECIPE: spec.name,
        LABEL_LOCK: spec.lock_sha256,
        LABEL_PREFIX: spec.prefix,
        LABEL_IMPORTS: ",".join(spec.imports),
        "org.opencontainers.image.title": spec.name,
        "org.opencontainers.image.version": spec.lock_sha256[:12],
        "org.opencontainers.image.revision": spec.lock_sha256,
        "org.opencontainers.image.created": spec.created,
    }
    if spec.source:
        out["org.opencontainers.image.source"] = spec.source
    return out


def config(base: oci.Image, spec: ImageSpec, diff_ids: list[str]) -> dict[str, Any]:
    """The image config (image-spec ``config.md``): the base's settings with PATH, the
    variables, the user, working directory and command of the environment."""
    base_cfg = dict(base.config.get("config") or {})
    env = [e for e in base_cfg.get("Env") or [] if not e.startswith("PATH=")]
    ours = {
        "PATH": f"{spec.prefix}/bin:/usr/local/bin:/usr/bin:/bin",
        "CONDA_PREFIX": spec.prefix,
        "PYTHONNOUSERSITE": "1",
        "LANG": "C.UTF-8",
        **dict(spec.variables),
    }
    env = [e for e in env if e.split("=", 1)[0] not in ours]
    env += [f"{k}={v}" for k, v in ours.items()]
    history = list(base.config.get("history") or [])
    for what in (f"environment {spec.name} at {spec.prefix}", f"user {spec.user} ({spec.uid})"):
        history.append({"created": spec.created, "created_by": f"envbuild: {what}"})
    return {
        "architecture": spec.architecture,
        "os": "linux",
        "created": spec.created,
        "config": {
            **{k: v for k, v in base_cfg.items() if k in ("StopSignal", "Volumes")},
            "Env": env,
            "User": f"{spec.uid}:{spec.uid}",
            "WorkingDir": f"/home/{spec.user}",
            "Cmd": ["python"],
            "Labels": labels(spec),
        },
        "rootfs": {"type": "layers", "diff_ids": [*(d.diff_id for d in base.layers), *diff_ids]},
        "history": history,
    }


def write_image(
    prefix: Path, spec: ImageSpec, base_path: Path, base_digest: str, output: Path
) -> WrittenImage:
    """Write the image of the environment at ``prefix`` on the base image at ``base_path``
    (an OCI layout or its archive; ``base_digest``: the manifest digest it must have, empty
    to take any) into the archive ``output``, atomically. Raises ImageError (bad base, digest
    mismatch, conda-pack) or OSError (a full disk); ``output`` is then left as it was."""
    from envbuild.ship.base_image import open_base

    clean_temporaries(output)  # of a run that was killed
    with open_base(base_path, base_digest, spec.architecture) as (layout, base):
        env = env_entries(prefix.resolve(), spec)
        user = user_entries(layout, base, spec)
        env_bytes = sum(_size(e) for e in env)
        with staged_file(output) as tmp, tmp.open("wb") as f:
            arc = oci.ArchiveWriter(f, spec.epoch)
            for layer in base.layers:
                with layout.open(oci.blob_name(layer.digest)) as src:
                    arc.copy_blob(src, layer)
            layers = [arc.stream_blob(_layer_writer(es, spec.epoch)) for es in (env, user)]
            cfg = arc.add_blob(oci.canonical(config(base, spec, [d.diff_id for d in layers])),
                               OCI_CONFIG)  # fmt: skip
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": cfg.to_json(),
                "layers": [d.to_json() for d in (*base.layers, *layers)],
                "annotations": {**labels(spec), **dict(spec.pins)},
            }
            man = arc.add_blob(oci.canonical(manifest), OCI_MANIFEST)
            ref = {"org.opencontainers.image.ref.name": spec.lock_sha256[:12],
                   "io.containerd.image.name": spec.tag}  # fmt: skip
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                     "manifests": [{**man.to_json(), "annotations": ref}]}  # fmt: skip
            arc.add_file("index.json", oci.canonical(index))
            # Docker's own index of the archive: what `docker load` before 25 reads
            all_layers = [oci.blob_name(d.digest) for d in (*base.layers, *layers)]
            docker = [{"Config": oci.blob_name(cfg.digest), "RepoTags": [spec.tag],
                       "Layers": all_layers}]  # fmt: skip
            arc.add_file("manifest.json", oci.canonical(docker))
            arc.finish()
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
    return WrittenImage(output, man.digest, output.stat().st_size, base.digest, env_bytes)


def _layer_writer(entries: list[oci.Entry], mtime: int) -> Callable[[IO[bytes]], oci.Descriptor]:
    def write_tar(out: IO[bytes]) -> None:
        oci.write_layer_tar(out, entries, mtime)

    def write(out: IO[bytes]) -> oci.Descriptor:
        return oci.write_gzip_layer(out, write_tar)

    return write


def _size(e: oci.Entry) -> int:
    if e.kind != "file":
        return 0
    return len(e.data) if e.data is not None else os.lstat(e.source).st_size


__all__ = ["ImageSpec", "WrittenImage", "image_path", "write_image"]
