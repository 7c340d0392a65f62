"""The environment layer's files and records after conda-pack relocated them to the image's
prefix (``dest_prefix``): what conda-pack leaves describing the build's prefix.

conda-pack rewrites every file with a prefix placeholder for the new prefix, but the bytecode
of those files still holds the build's prefix (and no longer matches its source's hash), and
the records (``conda-meta/*.json``) still carry the installed files' hashes and sizes; the
history is dated by the build's clock. Two builds of one lock at two paths would differ in
exactly these files, so the image makes them describe the image.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from envbuild.prefix.meta import parse_record
from envbuild.ship import oci


def recompile_relocated(entries: dict[str, oci.Entry], root: str, prefix: Path) -> None:
    """Compile again the bytecode of the sources conda-pack rewrote for the image's prefix
    (``_sysconfigdata``, ``python-config``: their constants name the prefix), with the
    environment's interpreter as :mod:`envbuild.install.bytecode` does (checked-hash,
    prefix-relative names): the build's bytecode would name the build's prefix, and no longer
    match its source's hash. Bytecode that does not compile again is left out."""
    from envbuild.util import proc

    bytecode: dict[str, list[str]] = {}  # <folder>/<stem> -> its __pycache__ entries
    for path in entries:
        if path.endswith(".pyc") and "/__pycache__/" in path:
            folder, name = path.rsplit("/__pycache__/", 1)
            bytecode.setdefault(f"{folder}/{name.split('.', 1)[0]}", []).append(path)
    todo: dict[str, list[str]] = {}  # rewritten source -> its bytecode entries
    for path, e in entries.items():
        if e.kind == "file" and e.data is not None and path.endswith(".py"):
            todo[path] = bytecode.get(path[:-3], [])
    todo = {k: v for k, v in todo.items() if v}
    if not todo:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for src in todo:
            (Path(tmp) / src).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / src).write_bytes(entries[src].data or b"")
        argv = [str(prefix / "bin" / "python"), "-I", "-B", "-m", "compileall", "-q",
                "--invalidation-mode", "checked-hash", "-s", str(Path(tmp) / root),
                *(str(Path(tmp) / src) for src in todo)]  # fmt: skip
        proc.run(argv, check=False, timeout=600)
        for pycs in todo.values():
            for pyc in pycs:
                fresh = Path(tmp) / pyc
                if fresh.is_file():
                    entries[pyc] = oci.Entry(pyc, "file", data=fresh.read_bytes(), mode=0o644)
                else:
                    del entries[pyc]


_HISTORY_HEADER = re.compile(rb"^==> [0-9-]+ [0-9:]+ <==$", re.MULTILINE)


def relocate_records(entries: dict[str, oci.Entry], root: str, created: str) -> None:
    """Make the records describe the files as they are in the image: ``sha256_in_prefix`` and
    size of each file conda-pack rewrote for the new prefix (and of links to one), no entry for
    bytecode the layer leaves out, and the date of
    ``conda-meta/history``'s entries, the epoch's (they held the build's clock and path, so
    two builds of one lock would differ)."""
    import hashlib
    import json

    history = entries.get(f"{root}/conda-meta/history")
    if history is not None and history.data is None:
        stamp = "==> " + created.replace("T", " ").rstrip("Z") + " <=="
        text = _HISTORY_HEADER.sub(stamp.encode(), Path(history.source).read_bytes())
        entries[history.path] = oci.Entry(history.path, "file", data=text, mode=0o644)

    def rewritten(rel: str) -> bytes | None:
        path = f"{root}/{rel}"
        for _ in range(16):  # links within the prefix, relative
            e = entries.get(path)
            if e is None or e.kind != "link":
                return e.data if e is not None and e.kind == "file" else None
            if e.target.startswith("/"):
                return None
            path = os.path.normpath(os.path.join(os.path.dirname(path), e.target))
        return None

    for path, e in list(entries.items()):
        if not (path.startswith(f"{root}/conda-meta/") and path.endswith(".json") and e.data):
            continue
        record = parse_record(e.data)
        changed = False
        paths = (record.get("paths_data") or {}).get("paths", [])
        # bytecode the layer does not hold (compiled from a source naming the build's prefix,
        # left out as in the tarball: envbuild.ship.reproducible): no record may describe it
        gone = {
            p["_path"] for p in paths
            if p.get("path_type") == "pyc_file" and f"{root}/{p['_path']}" not in entries
        }  # fmt: skip
        if gone:
            record["paths_data"]["paths"] = paths = [p for p in paths if p["_path"] not in gone]
            record["files"] = [f for f in record.get("files", []) if f not in gone]
            changed = True
        for p in paths:
            data = rewritten(p["_path"]) if "sha256_in_prefix" in p else None
            if data is not None:
                p["sha256_in_prefix"] = hashlib.sha256(data).hexdigest()
                if p.get("path_type") == "pyc_file":  # compiled here: no other hash
                    p["sha256"] = p["sha256_in_prefix"]
                own = entries.get(f"{root}/{p['_path']}")
                if own is not None and own.kind == "file" and "size_in_bytes" in p:
                    p["size_in_bytes"] = len(data)  # a file, not a link to one
                changed = True
        if changed:  # conda-pack's own serialisation (rewrite_conda_meta)
            out = json.dumps(record, indent=True, sort_keys=True).encode()
            entries[path] = oci.Entry(path, "file", data=out, mode=e.mode)
