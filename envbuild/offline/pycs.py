"""Bytecode in the offline channel's packages, as conda-forge ships it.

conda-forge's ``python`` and its binary (non-``noarch``) Python packages carry
``__pycache__/<stem>.<tag>.pyc`` for their ``.py`` files (conda-build compiles them when it
builds the package); only ``noarch: python`` packages leave compiling to the installer. Our
offline channel is made from this interpreter and from PyPI wheels, which ship none, so without
this an environment built from it compiles thousands of files conda-forge's would not (the
comparison with conda in ``benchmarks/vs_conda.py`` was of unlike channels).

:func:`with_bytecode` adds them to a package's members before it is written
(:func:`envbuild.offline.archives.rewrite_conda`): every ``.py`` the package installs, except
those the installer rewrites (``info/has_prefix``: their bytecode would name another source),
compiled by this interpreter in a fresh process, in sorted order, with ``--invalidation-mode
checked-hash`` (PEP 552: valid wherever the package is installed) and the prefix-relative path
as ``co_filename``, by :mod:`envbuild.install.compiler`'s own driver; listed in
``info/paths.json`` (``hardlink``, sha256, size) and ``info/files``. Same package in, same bytes
out.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
import tempfile
from pathlib import Path

from envbuild.install.bytecode import pyc_path
from envbuild.install.compiler import DRIVER
from envbuild.offline.archives import Members
from envbuild.util import proc


def _pyc(source: str) -> str:
    return pyc_path(source, sys.implementation.cache_tag)


def _info(members: Members, name: str) -> bytes | None:
    return next((data for m, data in members if m.name == name), None)


def _rewritten(info: Members) -> set[str]:
    """The paths the installer rewrites: ``prefix_placeholder`` entries of
    ``info/paths.json``, and the last field of each ``info/has_prefix`` line (``PATH``, or
    ``PLACEHOLDER MODE PATH``, quoted when it holds spaces; CRLF tolerated)."""
    import shlex

    out = set()
    for entry in json.loads(_info(info, "info/paths.json") or b"{}").get("paths", []):
        if entry.get("prefix_placeholder"):
            out.add(str(entry["_path"]))
    for line in (_info(info, "info/has_prefix") or b"").decode(errors="replace").splitlines():
        if line.strip():
            try:
                out.add(shlex.split(line)[-1])
            except ValueError:  # unbalanced quotes: the last field as written
                out.add(line.strip().rsplit(" ", 1)[-1].strip('"'))
    return out


def with_bytecode(pkg: Members, info: Members) -> tuple[Members, Members]:
    """``pkg`` with the bytecode of its ``.py`` files added, and ``info`` with them listed
    (module docstring). Files that do not compile (Python 2 leftovers) get none. Returns the
    new (pkg, info) members; both unchanged for a package without ``.py`` files. Raises
    ProcessError if the interpreter cannot run."""
    rewritten = _rewritten(info)
    shipped = {m.name for m, _ in pkg}
    sources = sorted(
        m.name
        for m, data in pkg
        if m.isfile() and m.name.endswith(".py") and data is not None
        and m.name not in rewritten and _pyc(m.name) not in shipped
    )  # fmt: skip
    if not sources:
        return pkg, info
    data_of = {m.name: data for m, data in pkg}
    with tempfile.TemporaryDirectory(prefix="envbuild-pycs-") as tmp:
        root = Path(tmp)
        for rel in sources:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data_of[rel] or b"")
        # the installer's own compile driver: the same call, the same bytes
        proc.run([sys.executable, "-I", "-B", "-c", DRIVER],
                 input_text=json.dumps([str(root), sources]) + "\n", timeout=1800)  # fmt: skip
        added: Members = []
        for rel in sources:
            pyc = root / _pyc(rel)
            if pyc.is_file():
                data = pyc.read_bytes()
                member = tarfile.TarInfo(_pyc(rel))
                member.size, member.mode = len(data), 0o644
                added.append((member, data))
    return pkg + added, _listed(info, added)


def _listed(info: Members, added: Members) -> Members:
    """``info`` with ``added`` in ``info/paths.json`` and ``info/files``, both sorted."""
    out: Members = []
    for member, data in info:
        if member.name == "info/paths.json" and data is not None:
            doc = json.loads(data)
            doc["paths"] = sorted(
                [*doc.get("paths", []), *(
                    {"_path": m.name, "path_type": "hardlink",
                     "sha256": hashlib.sha256(d or b"").hexdigest(), "size_in_bytes": m.size}
                    for m, d in added
                )],
                key=lambda p: p["_path"],
            )  # fmt: skip
            data = json.dumps(doc, indent=2, sort_keys=True).encode()
        elif member.name == "info/files" and data is not None:
            names = [n for n in data.decode().split("\n") if n] + [m.name for m, _ in added]
            data = ("\n".join(sorted(names)) + "\n").encode()
        else:
            out.append((member, data))
            continue
        member.size = len(data)
        out.append((member, data))
    return out
