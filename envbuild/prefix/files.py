"""Checking one installed file against its conda-meta ``paths_data`` entry, including files
conda rewrote at install time (``prefix_placeholder``) and files rewritten again since by a
relocation (conda-unpack); and reading those entries with prefix-relative paths.

conda records a ``noarch: python`` package's linked files in ``paths_data`` under the package's
own paths (``site-packages/...``, ``python-scripts/...``), while its ``files`` list and the
entries it generates (``pyc_file``, entry points) name where they landed
(``lib/python3.11/site-packages/...``, ``bin/...``); py-rattler records the landed paths
everywhere. :func:`record_entries` maps them as conda's ``get_python_noarch_target_path``
(conda/common/path/python.py) does.

Rules from conda's install logic (text mode: every placeholder replaced by the prefix; binary
mode: replaced inside each NUL-terminated string, which is padded with NULs to keep its length;
https://docs.conda.io/projects/conda-build/en/latest/resources/make-relocatable.html). Reads
only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_ENV_SHEBANG = b"#!/usr/bin/env "
# conda's path types of the scripts it generates at install time (conda/models/enums.py)
ENTRY_POINTS = ("unix_python_entry_point", "windows_python_entry_point_script")
_SITE = re.compile(r"^((?:lib/python[0-9.]+|Lib)/site-packages)/")


def site_packages_dir(records: Iterable[dict[str, Any]]) -> str:
    """The prefix-relative site-packages directory of an environment's conda-meta
    ``records``: the ``python`` record's ``python_site_packages_path`` (CEP 17), else
    ``lib/python<X.Y>/site-packages`` from its version, else the first such directory any
    record's ``files`` names ("" if none does)."""
    records = list(records)
    python = next((r for r in records if r.get("name") == "python"), None)
    if python is not None:
        if python.get("python_site_packages_path"):
            return str(python["python_site_packages_path"]).rstrip("/")
        version = str(python.get("version", "")).split(".")
        if len(version) >= 2 and python.get("subdir") != "win-64":
            return f"lib/python{version[0]}.{version[1]}/site-packages"
    for r in records:
        for f in r.get("files", []):
            if m := _SITE.match(f):
                return m.group(1)
    return ""


def record_entries(record: dict[str, Any], site: str) -> list[dict[str, Any]]:
    """The ``paths_data`` entries of a conda-meta ``record`` with prefix-relative ``_path``
    (``site``: :func:`site_packages_dir`), or one bare entry per ``files`` line when the
    record has no ``paths_data``. Entries of a ``noarch: python`` package under
    ``site-packages/`` or ``python-scripts/`` are mapped to ``site`` and the scripts
    directory (copies; the record is not changed)."""
    entries = (record.get("paths_data") or {}).get("paths")
    if not entries:
        return [{"_path": f} for f in record.get("files", [])]
    noarch = record.get("noarch")
    if isinstance(noarch, dict):
        noarch = noarch.get("type")
    if noarch != "python" or not site:
        return list(entries)
    scripts = "Scripts" if site.startswith("Lib/") else "bin"
    out = []
    for e in entries:
        path = str(e.get("_path", ""))
        if path.startswith("site-packages/"):
            e = {**e, "_path": site + path[len("site-packages") :]}
        elif path.startswith("python-scripts/"):
            e = {**e, "_path": scripts + path[len("python-scripts") :]}
        out.append(e)
    return out


def _unreplace(data: bytes, prefix: str, placeholder: str, mode: str) -> bytes | None:
    """``data`` with the prefix replacement undone, or None if it cannot be (binary mode with
    a prefix longer than the placeholder)."""
    p, ph = prefix.encode(), placeholder.encode()
    if mode != "binary":
        return data.replace(p, ph)
    pad = len(ph) - len(p)
    if pad < 0:
        return None
    pattern = re.compile(re.escape(p) + rb"([^\x00]*)" + b"\x00" * pad)
    return pattern.sub(lambda m: ph + m.group(1), data)


def check_file(path: Path, entry: dict[str, Any], prefix: str) -> str:
    """The state of the existing file ``path`` against its ``paths_data`` ``entry``, for a
    prefix now at ``prefix`` (its resolved path): "ok", "modified", "moved" (it still names
    the prefix it was installed for, or still its placeholder, not ``prefix``: moved or
    unpacked without relocation) or "unknown"
    (the record has no hash for it, e.g. generated entry points)."""
    if entry.get("path_type") in ("softlink", "directory") or path.is_symlink():
        return "ok"
    in_prefix, original = entry.get("sha256_in_prefix"), entry.get("sha256")
    if not (in_prefix or original):
        return "unknown"
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    placeholder = entry.get("prefix_placeholder")
    if not placeholder:
        if actual == (in_prefix or original):
            return "ok"
        if entry.get("path_type") in ENTRY_POINTS and data.startswith(_ENV_SHEBANG):
            # conda-pack gave the generated script an env shebang (its original named the
            # prefix, which the record does not say); conda records no hash for these at all
            return "ok"
        return "modified"
    if in_prefix and actual == in_prefix:
        return "ok" if prefix.encode() in data else "moved"
    if placeholder != prefix and placeholder.encode() in data and actual == original:
        return "moved"  # still the package's placeholder: unpacked (conda-pack), not relocated
    undone = _unreplace(data, prefix, placeholder, entry.get("file_mode", "text"))
    if original and undone is not None and hashlib.sha256(undone).hexdigest() == original:
        return "ok"  # relocated since it was installed (conda-unpack): content unchanged
    if original and data.startswith(_ENV_SHEBANG):
        # conda-pack rewrites a script's "#!<prefix>/bin/X" to "#!/usr/bin/env X"
        first, nl, rest = data.partition(b"\n")
        command = first[len(_ENV_SHEBANG) :]
        restored = b"#!" + placeholder.encode() + b"/bin/" + command + nl + rest
        if hashlib.sha256(restored).hexdigest() == original:
            return "ok"
    return "modified"
