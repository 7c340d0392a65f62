"""Pack stage: conda-pack the environment into ``dist/<name>-<platform>.tar.zst`` (or .tar.gz)
and prove the tarball before it replaces the previous one.

conda-pack (https://conda.github.io/conda-pack/) writes the archive in its deterministic file
order; it has no zstd writer, so for ``tar.zst`` it writes a plain tar that ``zstandard``
compresses. Proof: ``tar -x`` unpacks the tarball into a fresh directory (RAM-backed when
there is room), ``conda-unpack`` runs with the unpacked interpreter (its shebang is
``#!/usr/bin/env python``), and the smoke imports pass there.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import zstandard

from envbuild.errors import PackError
from envbuild.lock.epoch import FALLBACK_EPOCH
from envbuild.prefix.meta import read_records
from envbuild.recipe.model import PackOptions, Smoke
from envbuild.recipe.validate import display
from envbuild.ship.reproducible import prefixed_bytecode, tar_class
from envbuild.ship.smoke import activated_env, failure_message, run_checks
from envbuild.util import proc, progress
from envbuild.util.fs import (
    clean_ram_scratch,
    clean_temporaries,
    file_sha256,
    ram_scratch,
    staged_file,
)

log = logging.getLogger("envbuild")


def tarball_path(dist: Path, name: str, platform: str, fmt: str) -> Path:
    """``<dist>/<name>-<platform>.<fmt>``."""
    return dist / f"{name}-{platform}.{fmt}"


def history_path(dist: Path, name: str, build_id: str, fmt: str) -> Path:
    """``<dist>/history/<name>/<build id>.<fmt>``: the tarball kept for one build (rollback
    publishes it again; gc removes it with the build)."""
    return dist / "history" / name / f"{build_id}.{fmt}"


def bytecode_files(prefix: Path, packed: set[str]) -> list[Any]:
    """conda-pack ``File``s for the ``pyc_file`` entries of conda-meta that conda-pack does not
    pack itself (it takes a package's files from the package's own paths.json, and drops
    unmanaged ``.pyc``): the bytecode compiled at build time (see :mod:`envbuild.install.bytecode`),
    except :func:`prefixed_bytecode`."""
    from conda_pack.core import File

    out = []
    for _, record in read_records(prefix):
        skip = prefixed_bytecode(record)
        for entry in record.get("paths_data", {}).get("paths", []):
            rel = entry["_path"]
            if entry.get("path_type") == "pyc_file" and rel not in packed and rel not in skip:
                out.append(File(str(prefix / rel), rel, is_conda=True))
    return out


def activation_files(variables: tuple[tuple[str, str], ...], scratch: Path) -> list[Any]:
    """conda-pack ``File``s that set ``variables`` when the unpacked environment is activated:
    ``etc/conda/{de,}activate.d/envbuild-variables.sh`` (sourced by conda-pack's
    ``bin/activate`` and by ``conda activate``) and ``conda-meta/state`` (conda's record of
    ``conda env config vars``)."""
    import shlex

    from conda_pack.core import File

    if not variables:
        return []
    texts = {
        "etc/conda/activate.d/envbuild-variables.sh": "".join(
            f"export {k}={shlex.quote(v)}\n" for k, v in variables
        ),
        "etc/conda/deactivate.d/envbuild-variables.sh": "".join(
            f"unset {k}\n" for k, _ in variables
        ),
        "conda-meta/state": json.dumps({"env_vars": dict(variables)}, indent=2) + "\n",
    }
    out = []
    for rel, text in texts.items():
        path = scratch / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out.append(File(str(path), rel, is_conda=False))
    return out


def extra_files(extra: tuple[tuple[str, bytes], ...], scratch: Path) -> list[Any]:
    """conda-pack ``File``s for ``extra``, (path in the prefix, bytes): the SBOM."""
    from conda_pack.core import File

    out = []
    for rel, data in extra:
        path = scratch / "extra" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out.append(File(str(path), rel, is_conda=False))
    return out


def _compressor(raw: IO[bytes], fmt: str, level: int, mtime: int) -> Any:
    """A writer compressing into ``raw``: multi-threaded zstd (with long-distance matching,
    window 2^27 = 128 MiB, which ``zstd -d`` and every zstd library decode by default) or
    conda-pack's parallel gzip writer (header time ``mtime``, no file name). Both give the
    same bytes whatever the number of threads (zstd: any count >= 1 gives the output of its
    multi-threaded mode; gzip: fixed-size blocks), so machines with other core counts agree."""
    if fmt == "tar.zst":
        threads = max(os.cpu_count() or 1, 1)  # >= 1: 0 would be zstd's single-thread format
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=threads, enable_ldm=True, window_log=27, write_checksum=True
        )
        return zstandard.ZstdCompressor(compression_params=params).stream_writer(raw, closefd=False)
    from conda_pack.formats import ParallelGzipFileWriter

    threads = os.cpu_count() or 1
    writer = ParallelGzipFileWriter(raw, compresslevel=level, n_threads=threads, mtime=mtime)
    return contextlib.closing(writer)


def _kind(target: str) -> str:
    """What a file is, for ordering the tarball: its extension, with every shared library
    (``.so``, ``.so.1.2``) as one kind. Files of one kind side by side compress ~3% smaller
    (zstd finds more matches within its window): ``ml``'s 123.3 MB became 120.0 MB."""
    name = target.rsplit("/", 1)[-1]
    return ".so" if _SHARED_LIBRARY.search(name) else os.path.splitext(name)[1]


_SHARED_LIBRARY = re.compile(r"\.so(\.[0-9.]+)?$")


def write_tarball(
    prefix: Path,
    output: Path,
    fmt: str,
    level: int,
    variables: tuple[tuple[str, str], ...] = (),
    epoch: int = FALLBACK_EPOCH,
    extra: tuple[tuple[str, bytes], ...] = (),
) -> int:
    """conda-pack ``prefix`` into ``output`` (``tar.zst`` or ``tar.gz``), the tar streamed
    straight into the compressor (no plain tar on disk). conda-pack's own Packer decides the
    files and adds conda-unpack; the build's bytecode is added to them, and all are ordered
    by kind, then path (:func:`_kind`). ``level`` is the zstd (1-19) or gzip (1-9) level.
    Reproducible: every member and the gzip header carry ``epoch`` (the lock's,
    :func:`envbuild.lock.epoch.lock_epoch`), see :mod:`envbuild.ship.reproducible`; conda-pack
    already blanks
    the package cache paths of conda-meta records (``extracted_package_dir``,
    ``package_tarball_full_path``, ``link.source``) and writes them with sorted keys.
    Returns the unpacked size in bytes: the sum of the sizes of the tarball's regular-file
    members (what a pull may write, :func:`unpacked_size`). Raises PackError if
    conda-pack refuses the prefix; ``output`` is then partial (the caller writes it through
    :func:`envbuild.util.fs.staged_file`)."""
    import conda_pack
    from conda_pack.core import Packer

    try:
        env = conda_pack.CondaEnv.from_prefix(str(prefix))
        files = [*env.files, *bytecode_files(prefix, {f.target for f in env.files})]
        with contextlib.ExitStack() as stack:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            files += activation_files(variables, scratch)
            files += extra_files(extra, scratch)
            files.sort(key=lambda f: (_kind(f.target), f.target))
            raw = stack.enter_context(output.open("wb"))
            sink = stack.enter_context(_compressor(raw, fmt, level, epoch))
            tar = tar_class()(sink, "", mode="w", mtime=epoch)
            tar.prefix, tar.named = str(prefix), set()
            arc = stack.enter_context(tar)
            packer = Packer(str(prefix), arc, None, None)
            sizes = [os.lstat(f.source).st_size for f in files]
            total = sum(sizes)
            with progress.bytes_bar("packing", total) as bar:
                for f, size in zip(files, sizes, strict=True):
                    packer.add(f)
                    bar.update(size)
            # conda-pack lists every unmanaged text file for conda-unpack with the build
            # directory as placeholder (CACHEDIR.TAG, py-rattler's __clobbers__/, scripts it
            # could not rewrite); keep only those whose packed bytes really contain it
            packer.prefixes = [
                (target, placeholder, mode)
                for target, placeholder, mode in packer.prefixes
                if placeholder != str(prefix) or target in tar.named
            ]
            packer.finish()
            unpacked = sum(m.size for m in arc.archive.members if m.isreg())
    except conda_pack.CondaPackException as e:
        msg = f"conda-pack failed for {display(prefix)}: {e}"
        raise PackError(msg) from None
    return unpacked


def unpacked_size(tarball: Path, fmt: str | None = None) -> int:
    """The sum of the sizes (bytes) of the regular-file members of ``tarball``, read from its
    headers (the whole stream is decompressed once): what :func:`write_tarball` returned for
    it, for a tarball whose pack record does not say."""
    with open_tar_stream(tarball, fmt) as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
        return sum(m.size for m in tf if m.isreg())


@dataclass(frozen=True, slots=True)
class Packed:
    """A proved tarball: its ``path``, ``sha256`` (hex of the file) and ``unpacked_size``
    (bytes, :func:`unpacked_size`), what the image's annotations pin."""

    path: Path
    sha256: str
    unpacked_size: int


PROVE_PREFIX = "envbuild-prove-"  # + pid: a killed run's copy is found and removed

# GNU tar and bsdtar: as an unprivileged user would (no owners, umask applied), into cwd
_UNTAR = ("tar", "-x", "-f", "-", "--no-same-owner", "--no-same-permissions")


def _untar(tarball: Path, dest: Path, fmt: str | None, shown: Path) -> None:
    """Unpack ``tarball`` into the new directory ``dest`` with ``tar`` (C: ~10x faster than
    tarfile on 20,000 files), fed by our decompressor. Raises PackError naming ``shown``."""
    dest.mkdir(parents=True)
    try:
        with open_tar_stream(tarball, fmt) as stream, proc.feeding(_UNTAR, cwd=dest) as tar:
            shutil.copyfileobj(stream, tar, 1 << 20)
    except (proc.ProcessError, OSError, zstandard.ZstdError, EOFError) as e:
        msg = f"{display(shown)}: cannot be unpacked: {e}"
        raise PackError(msg) from None


@contextlib.contextmanager
def open_tar_stream(tarball: Path, fmt: str | None = None) -> Iterator[IO[bytes]]:
    """Yield a binary stream of the plain tar inside ``tarball``, decompressed as its ``fmt``
    says (``tar.zst``, ``tar.gz`` or ``tar``; default: from the file name)."""
    fmt = fmt or next((f for f in ("tar.zst", "tar.gz") if tarball.name.endswith(f)), "tar")
    with tarball.open("rb") as raw:
        if fmt == "tar.zst":
            with zstandard.ZstdDecompressor().stream_reader(raw) as reader:
                yield reader
        elif fmt == "tar.gz":
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield cast("IO[bytes]", gz)
        else:
            yield raw


def extract(tarball: Path, dest: Path, fmt: str | None = None) -> None:
    """Extract ``tarball`` into the directory ``dest`` (tarfile's "tar" safety filter)."""
    dest.mkdir(parents=True, exist_ok=True)
    with open_tar_stream(tarball, fmt) as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
        tf.extractall(dest, filter="tar")


def prove(
    tarball: Path,
    smoke: Smoke,
    name: str,
    fmt: str | None = None,
    final: Path | None = None,
    variables: tuple[tuple[str, str], ...] = (),
    size: int = 0,
) -> None:
    """Unpack ``tarball`` (its ``fmt``: default from the name) elsewhere, run conda-unpack,
    then the smoke imports there.

    ``size`` (bytes, about the unpacked size) lets the copy go to a RAM-backed directory
    (:func:`envbuild.util.fs.ram_scratch`): unpacking 20,000 files there takes a tenth of the time
    it takes on a journaling disk; otherwise it goes beside ``final``. Raises PackError with
    the failing step's output.
    """
    final = final or tarball  # named in messages; scratch beside it is named after it
    ram = ram_scratch(2 * size) if size else None  # room for conda-unpack's rewrites too
    if ram is not None:
        parent, label = ram, f"{PROVE_PREFIX}{os.getpid()}-"
    else:
        parent, label = final.parent, f".{final.name}.prove-"  # found by clean_temporaries
    with tempfile.TemporaryDirectory(prefix=label, dir=parent) as tmp:
        dest = Path(tmp) / "env"
        _untar(tarball, dest, fmt, final)
        _prove_unpacked(dest, final, smoke, name, variables)


def _prove_unpacked(
    dest: Path, tarball: Path, smoke: Smoke, name: str, variables: tuple[tuple[str, str], ...]
) -> None:
    """conda-unpack the unpacked copy ``dest`` of ``tarball`` with its own interpreter (its
    shebang is ``#!/usr/bin/env python``), then run the smoke imports there. Raises
    PackError naming ``tarball``."""
    unpack = [str(dest / "bin" / "python"), str(dest / "bin" / "conda-unpack")]
    try:
        proc.run(unpack, env=activated_env(dest, variables), timeout=600)
    except proc.ProcessError as e:
        msg = f"{display(tarball)}: conda-unpack failed in the unpacked copy:\n{e}"
        raise PackError(msg) from None
    results = run_checks(Smoke(imports=smoke.imports), dest, variables=variables)
    if not all(r.ok for r in results):
        msg = f"{display(tarball)}: the unpacked copy fails its imports\n" + failure_message(
            name, dest, results
        )
        raise PackError(msg)


def pack_env(
    name: str,
    prefix: Path,
    dest: Path,
    options: PackOptions,
    smoke: Smoke,
    variables: tuple[tuple[str, str], ...] = (),
    epoch: int = FALLBACK_EPOCH,
    extra: tuple[tuple[str, bytes], ...] = (),
) -> Packed:
    """Pack ``prefix`` into ``dest`` (.tar.zst or .tar.gz) and prove it; returns what was
    packed (``dest``, its sha256, its unpacked size).
    ``epoch``: the time of every member (the lock's, :func:`envbuild.lock.epoch.lock_epoch`).

    The previous tarball at ``dest`` is replaced only after the new one proved out; on any
    failure (or Ctrl-C) it is left as it was. Raises PackError.
    """
    real = prefix.resolve()
    clean_temporaries(dest)  # of a run that was killed
    clean_ram_scratch(PROVE_PREFIX)
    with staged_file(dest) as tmp:
        size = write_tarball(real, tmp, options.format, options.level, variables, epoch, extra)
        os.chmod(tmp, 0o644)
        prove(tmp, smoke, name, fmt=options.format, final=dest, variables=variables, size=size)
    log.info("packed %s: %s (%.1f MB)", name, display(dest), dest.stat().st_size / 1e6)
    return Packed(dest, file_sha256(dest), size)
