"""Pack stage: conda-pack the environment into ``dist/<name>-<platform>.tar.zst`` (or .tar.gz)
and prove the tarball before it replaces the previous one.

conda-pack (https://conda.github.io/conda-pack/) writes the archive in its deterministic file
order; it has no zstd writer, so for ``tar.zst`` it writes a plain tar that ``zstandard``
compresses. Proof: extract into a fresh directory, run ``conda-unpack`` with the unpacked
interpreter (its shebang is ``#!/usr/bin/env python``), and run the smoke imports there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import zstandard

from envbuild import _proc
from envbuild._fs import clean_temporaries, staged_file
from envbuild.errors import PackError
from envbuild.recipe import PackOptions, Smoke, _display
from envbuild.smoke import activated_env, failure_message, run_checks

log = logging.getLogger("envbuild")


def tarball_path(dist: Path, name: str, platform: str, fmt: str) -> Path:
    """``<dist>/<name>-<platform>.<fmt>``."""
    return dist / f"{name}-{platform}.{fmt}"


def _conda_pack(prefix: Path, output: Path, fmt: str, level: int) -> None:
    import conda_pack

    try:
        conda_pack.pack(
            prefix=str(prefix),
            output=str(output),
            format=fmt,
            force=True,
            compress_level=level,
            n_threads=-1 if fmt != "tar" else 1,
        )
    except conda_pack.CondaPackException as e:
        msg = f"conda-pack failed for {_display(prefix)}: {e}"
        raise PackError(msg) from None


def _conda_pack_zst(prefix: Path, output: Path, level: int) -> None:
    """conda-pack's tar written straight into a multi-threaded zstd stream at ``output`` (no
    plain tar on disk). conda-pack's own Packer decides the files and adds conda-unpack;
    conda-pack 0.9's built-in tar.zst ignores the level and uses one thread, hence this."""
    import conda_pack
    from conda_pack.core import Packer
    from conda_pack.formats import archive

    history = prefix / "conda-meta" / "history"
    mtime = history.lstat().st_mtime if history.exists() else None
    cctx = zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True)
    try:
        env = conda_pack.CondaEnv.from_prefix(str(prefix))
        with (
            output.open("wb") as raw,
            cctx.stream_writer(raw, closefd=False) as zstd,
            archive(zstd, str(output), "", "tar", mtime=mtime) as arc,
        ):
            packer = Packer(str(prefix), arc, None, None)
            for f in env.files:
                packer.add(f)
            packer.finish()
    except conda_pack.CondaPackException as e:
        msg = f"conda-pack failed for {_display(prefix)}: {e}"
        raise PackError(msg) from None


@contextlib.contextmanager
def open_tar_stream(tarball: Path, zstd: bool | None = None) -> Iterator[IO[bytes]]:
    """Yield a binary stream of the tar inside ``tarball``: zstd-decompressed when ``zstd``
    (default: the name ends in .zst); other compressions are left to tarfile."""
    with tarball.open("rb") as raw:
        if zstd if zstd is not None else tarball.name.endswith(".zst"):
            with zstandard.ZstdDecompressor().stream_reader(raw) as reader:
                yield reader
        else:
            yield raw


def extract(tarball: Path, dest: Path, zstd: bool | None = None) -> None:
    """Extract ``tarball`` into the directory ``dest`` (tarfile's "tar" safety filter)."""
    dest.mkdir(parents=True, exist_ok=True)
    with open_tar_stream(tarball, zstd) as stream, tarfile.open(fileobj=stream, mode="r|*") as tf:
        tf.extractall(dest, filter="tar")


def prove(
    tarball: Path, smoke: Smoke, name: str, zstd: bool | None = None, final: Path | None = None
) -> None:
    """Unpack ``tarball`` elsewhere, run conda-unpack, then the smoke imports there.

    Raises PackError with the failing step's output.
    """
    final = final or tarball  # scratch space is named after it, for clean_temporaries
    with tempfile.TemporaryDirectory(prefix=f".{final.name}.prove-", dir=final.parent) as tmp:
        dest = Path(tmp) / "env"
        extract(tarball, dest, zstd)
        unpack = [str(dest / "bin" / "python"), str(dest / "bin" / "conda-unpack")]
        try:
            _proc.run(unpack, env=activated_env(dest), timeout=600)
        except _proc.ProcessError as e:
            msg = f"{_display(tarball)}: conda-unpack failed in the unpacked copy:\n{e}"
            raise PackError(msg) from None
        results = run_checks(Smoke(imports=smoke.imports), dest)
        if not all(r.ok for r in results):
            msg = f"{_display(tarball)}: the unpacked copy fails its imports\n" + failure_message(
                name, dest, results
            )
            raise PackError(msg)


def pack_env(name: str, prefix: Path, dest: Path, options: PackOptions, smoke: Smoke) -> Path:
    """Pack ``prefix`` into ``dest`` (.tar.zst or .tar.gz) and prove it; returns ``dest``.

    The previous tarball at ``dest`` is replaced only after the new one proved out; on any
    failure (or Ctrl-C) it is left as it was. Raises PackError.
    """
    real = prefix.resolve()
    clean_temporaries(dest)  # of a run that was killed
    with staged_file(dest) as tmp:
        if options.format == "tar.zst":
            _conda_pack_zst(real, tmp, options.level)
        else:
            _conda_pack(real, tmp, options.format, options.level)
        os.chmod(tmp, 0o644)
        prove(tmp, smoke, name, zstd=options.format == "tar.zst", final=dest)
    log.info("packed %s: %s (%.1f MB)", name, _display(dest), dest.stat().st_size / 1e6)
    return dest
