"""Checking one installed file against its conda-meta ``paths_data`` entry, including files
conda rewrote at install time (``prefix_placeholder``) and files rewritten again since by a
relocation (conda-unpack).

Rules from conda's install logic (text mode: every placeholder replaced by the prefix; binary
mode: replaced inside each NUL-terminated string, which is padded with NULs to keep its length;
https://docs.conda.io/projects/conda-build/en/latest/resources/make-relocatable.html). Reads
only.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

_ENV_SHEBANG = b"#!/usr/bin/env "


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
        return "ok" if actual == (in_prefix or original) else "modified"
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
