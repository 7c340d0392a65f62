"""Reproducible tarballs: what :func:`envbuild.ship.pack.write_tarball` changes in conda-pack's
output so that the same lock packs to the same bytes (https://reproducible-builds.org/docs/
archives/): one mtime for every member (the lock's epoch), normalized owner, group and modes, no
hard-link members, conda-meta without install-time or machine-specific values, scripts without
the build directory. Each rule is documented where it is applied, and in
docs/explanation/reproducibility.md ("Reproducible artifacts").
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from pathlib import Path
from typing import Any

from envbuild.prefix.meta import parse_record


def prefixed_bytecode(record: dict[str, Any]) -> set[str]:
    """The ``pyc_file`` paths of a conda-meta ``record`` compiled from a source that names
    the prefix (a ``prefix_placeholder`` file, e.g. ``_sysconfigdata_*.py``): their bytes
    depend on the build directory, and conda-unpack's rewrite of the source makes them stale
    wherever the tarball is unpacked, so they are not packed."""
    entries = (record.get("paths_data") or {}).get("paths", [])
    sources = {e["_path"] for e in entries if e.get("prefix_placeholder")}
    out = set()
    for e in entries:
        rel = e["_path"]
        if e.get("path_type") != "pyc_file" or "/__pycache__/" not in f"/{rel}":
            continue
        head, _, name = rel.rpartition("__pycache__/")
        if f"{head}{name.split('.', 1)[0]}.py" in sources:
            out.add(rel)
    return out


_HISTORY_DATE = re.compile(rb"^==> [0-9-]+ [0-9:]+ <==$", re.MULTILINE)


_RECORD = re.compile(r"^conda-meta/[^/]+\.json$")
# an entry point whose interpreter path is too long for a shebang line (127 bytes on Linux),
# as the installer writes it: a /bin/sh line that execs the interpreter
_TRAMPOLINE = re.compile(rb"\A#!/bin/sh\n'''exec' \"([^\"\n]+)\" \"\$0\" \"\$@\" #'''\n")


def packed_script(data: bytes, target: str, prefix: str) -> bytes:
    """The bytes packed for the script ``target`` of the environment at ``prefix``: conda-pack's
    ``#!/usr/bin/env <program>`` for a shebang naming the prefix, also when the installer wrote
    it as a ``/bin/sh`` trampoline (the prefix made the shebang line too long), so that the
    packed bytes do not depend on the build directory's length. Otherwise ``data``."""
    from conda_pack.core import rewrite_shebang

    m = _TRAMPOLINE.match(data)
    if m and m.group(1).startswith(prefix.encode() + b"/"):
        data = b"#!" + m.group(1) + b"\n" + data[m.end() :]
    out, fixed = rewrite_shebang(data, target, prefix)
    return bytes(out) if fixed else data


def reproducible_bytes(target: str, data: bytes, epoch: int, prefix: str) -> bytes:
    """What the tarball holds for the file ``target`` whose bytes conda-pack would pack are
    ``data`` (for a record: conda-pack's copy, package cache paths already blanked), so that
    nothing depends on the build directory or the install time:

    * ``conda-meta/history``: its ``==> date <==`` lines (install time) say ``epoch`` (UTC);
    * ``conda-meta/<package>.json``: in ``paths_data``, entries whose bytes in an environment
      depend on its path (``prefix_placeholder`` files, rewritten by conda-unpack wherever the
      tarball is unpacked; symlinks, whose ``sha256_in_prefix`` hashes their target) lose
      ``sha256_in_prefix`` and ``size_in_bytes`` (conda's PathData has both optional; the
      package's own ``sha256`` stays), and generated entry points (``#!<prefix>/bin/python``,
      which conda-pack packs as ``#!/usr/bin/env python``) get the sha256 and size of the
      bytes packed; :func:`prefixed_bytecode` entries are left out, as their files are.
      Written as conda-pack writes records (``indent=True``, sorted keys).
    """
    if target == "conda-meta/history":
        stamp = time.strftime("==> %Y-%m-%d %H:%M:%S <==", time.gmtime(epoch)).encode()
        return _HISTORY_DATE.sub(stamp, data)
    if target.startswith("bin/") and _TRAMPOLINE.match(data):
        return packed_script(data, target, prefix)
    if not _RECORD.match(target):
        return data

    record = parse_record(data)
    dropped = prefixed_bytecode(record)
    if dropped:
        paths = record["paths_data"]["paths"]
        record["paths_data"]["paths"] = [e for e in paths if e["_path"] not in dropped]
        record["files"] = [f for f in record.get("files", []) if f not in dropped]
    for entry in (record.get("paths_data") or {}).get("paths", []):
        if entry.get("prefix_placeholder") or entry.get("path_type") == "softlink":
            entry.pop("sha256_in_prefix", None)
            entry.pop("size_in_bytes", None)
        elif entry.get("path_type") == "unix_python_entry_point":
            try:
                script = Path(prefix, entry["_path"]).read_bytes()
            except OSError:
                continue
            packed = packed_script(script, entry["_path"], prefix)
            digest = hashlib.sha256(packed).hexdigest()
            entry.update(sha256=digest, sha256_in_prefix=digest, size_in_bytes=len(packed))
    return json.dumps(record, indent=True, sort_keys=True).encode()


def tar_class() -> type:
    """conda-pack's tar writer made reproducible (https://reproducible-builds.org/docs/archives/):
    every member has mtime ``epoch``, owner and group 0 without names, mode 0o755 when any
    execute bit is set (0o644 otherwise, 0o777 for symlinks, 0o755 for directories); files
    that share an inode are stored in full (a hard link member would depend on how the
    package cache linked them); conda-meta/history without install times."""
    from conda_pack.formats import TarArchive

    class ReproducibleTar(TarArchive):
        prefix = ""  # the environment packed (set by write_tarball)
        named: set[str]  # targets whose packed bytes contain ``prefix``

        def _normal(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.mtime = self.mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.issym():
                info.mode = 0o777
            else:
                info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
            return info

        def _add(self, source: str, target: str) -> None:
            self.archive.inodes.clear()  # never a hard link member
            if target == "conda-meta/history":
                with open(source, "rb") as f:
                    self._add_bytes(source, f.read(), target)
                return
            self.archive.add(source, target, recursive=False, filter=self._normal)

        def _add_bytes(self, source: str, sourcebytes: bytes, target: str) -> None:
            self.archive.inodes.clear()
            data = reproducible_bytes(target, sourcebytes, self.mtime, self.prefix)
            if self.prefix.encode() in data:
                self.named.add(target)
            info = self.archive.gettarinfo(source, target)
            info.size = len(data)
            self.archive.addfile(self._normal(info), io.BytesIO(data))

    return ReproducibleTar


__all__ = ["packed_script", "prefixed_bytecode", "reproducible_bytes", "tar_class"]
