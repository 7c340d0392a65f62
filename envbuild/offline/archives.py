"""Reproducible ``.conda`` archives: same content in, same bytes out, on any day and machine.

whl2conda and conda-package-handling stamp every member with the time of the conversion and
the index with ``timestamp = now``, so a channel built twice from the same wheels differs in
every archive and in ``repodata.json``. :func:`rewrite_conda` writes a package again following
https://reproducible-builds.org/docs/archives/:

* one mtime for every member (``epoch``: ``SOURCE_DATE_EPOCH`` or one derived from the input,
  see :func:`wheel_epoch`), and ``info/index.json``'s ``timestamp`` set to it (milliseconds);
* owner and group 0 with empty names, modes normalized (0o755 when any execute bit is set,
  else 0o644; symlinks 0o777), members sorted by name, no directory entries (as
  conda-package-handling writes them);
* zstd at a fixed level, single-threaded; the outer zip stored (as the .conda format says:
  https://docs.conda.io/projects/conda/en/latest/user-guide/concepts/packages.html) with a fixed
  date and fixed attributes, ``metadata.json``, then ``pkg-``, then ``info-``.

The rewrite reads only the archive, so it is idempotent: a package written by it and
rewritten gives the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zstandard

from envbuild.lock.epoch import FALLBACK_EPOCH

ZSTD_LEVEL = 9
_ZIP_MIN = 315532800  # 1980-01-01T00:00:00Z: the earliest time a zip entry can carry


def source_date_epoch(default: int) -> int:
    """``SOURCE_DATE_EPOCH`` from the environment when set to an integer, else ``default``."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else default


def wheel_epoch(wheel: Path) -> int:
    """The newest member date of the wheel ``wheel`` (a zip; dates read as UTC), or
    :data:`~envbuild.lock.epoch.FALLBACK_EPOCH` when every member has zip's minimum date: a time
    that comes from the input itself, the same on every machine."""
    import calendar

    with zipfile.ZipFile(wheel) as zf:
        newest = max((calendar.timegm((*i.date_time, 0, 0, 0)) for i in zf.infolist()), default=0)
    return newest if newest > _ZIP_MIN else FALLBACK_EPOCH


def _normalized(info: tarfile.TarInfo, epoch: int) -> tarfile.TarInfo:
    info.mtime = epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o777 if info.issym() else (0o755 if info.mode & 0o111 else 0o644)
    info.pax_headers = {}
    return info


Members = list[tuple[tarfile.TarInfo, bytes | None]]


def _members(component: bytes) -> Members:
    """Every file and link of a component tar (``.tar.zst`` bytes), with its data."""
    out: Members = []
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(component))
    with tarfile.open(fileobj=raw, mode="r|") as tf:
        for info in tf:
            if info.isdir():
                continue
            f = tf.extractfile(info) if info.isfile() else None
            out.append((info, f.read() if f is not None else None))
    return out


def _component(members: list[tuple[tarfile.TarInfo, bytes | None]], epoch: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in sorted(members, key=lambda m: m[0].name):
            tf.addfile(_normalized(info, epoch), io.BytesIO(data) if data is not None else None)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=0).compress(buf.getvalue())


def _zip_entry(name: str, epoch: int) -> zipfile.ZipInfo:
    when = time.gmtime(max(epoch, _ZIP_MIN))[:6]
    entry = zipfile.ZipInfo(name, date_time=when)
    entry.compress_type = zipfile.ZIP_STORED
    entry.create_system = 3  # unix
    entry.external_attr = 0o644 << 16
    return entry


def rewrite_conda(
    src: Path,
    dest: Path,
    epoch: int,
    edit_index: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    edit_members: Callable[[Members, Members], tuple[Members, Members]] | None = None,
) -> Path:
    """Write the ``.conda`` package ``src`` again as ``dest``, reproducibly (module docstring).

    ``edit_index`` may change ``info/index.json`` (its ``timestamp`` is set to ``epoch`` in
    milliseconds after it); ``edit_members`` may add or change members, ``(pkg, info) ->
    (pkg, info)`` (:func:`envbuild.offline.pycs.with_bytecode`). ``dest`` is written through
    a temporary file in its directory and moved into place; ``src`` may be ``dest``. Raises
    zipfile/tarfile/zstd errors for a damaged archive, KeyError when a component is missing.
    """
    with zipfile.ZipFile(src) as zf:
        names = zf.namelist()
        pkg_name = next(n for n in names if n.startswith("pkg-") and n.endswith(".tar.zst"))
        info_name = next(n for n in names if n.startswith("info-") and n.endswith(".tar.zst"))
        metadata = zf.read("metadata.json") if "metadata.json" in names else None
        pkg = _members(zf.read(pkg_name))
        info = _members(zf.read(info_name))
    if edit_members is not None:
        pkg, info = edit_members(pkg, info)
    for i, (member, data) in enumerate(info):
        if member.name == "info/index.json" and data is not None:
            index = json.loads(data)
            index = edit_index(index) if edit_index else index
            index["timestamp"] = epoch * 1000
            text = json.dumps(index, indent=2, sort_keys=True).encode()
            member.size = len(text)
            info[i] = (member, text)
    stem = dest.name[: -len(".conda")]
    meta = metadata or json.dumps({"conda_pkg_format_version": 2}).encode()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as out:
            out.writestr(_zip_entry("metadata.json", epoch), meta)
            out.writestr(_zip_entry(f"pkg-{stem}.tar.zst", epoch), _component(pkg, epoch))
            out.writestr(_zip_entry(f"info-{stem}.tar.zst", epoch), _component(info, epoch))
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


__all__ = ["ZSTD_LEVEL", "rewrite_conda", "source_date_epoch", "wheel_epoch"]
