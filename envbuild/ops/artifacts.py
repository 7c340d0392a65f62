"""Reading files that come from outside (downloaded CI artifacts) defensively.

Every read names the file in its error: a path that is a symlink, a directory or another
non-regular file is refused (``O_NOFOLLOW``, then ``fstat`` on what was opened, so a swap
between check and read cannot redirect it), and at most ``limit`` bytes are read (a bigger
file is refused, never loaded whole).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from envbuild.errors import EnvBuildError
from envbuild.recipe.validate import display

RESULT_LIMIT = 64 * 1024  # a result.json is a few hundred bytes
FILE_LIMIT = 64 * 1024 * 1024  # lockfiles and explicit files of thousands of packages


def read_regular(path: Path, limit: int = FILE_LIMIT) -> bytes:
    """The bytes of the regular file ``path`` (not through a symlink, at most ``limit``
    bytes). Raises EnvBuildError naming the path and what it is instead."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        msg = f"{display(path)}: missing"
        raise EnvBuildError(msg) from None
    except OSError as e:
        what = "a symlink" if path.is_symlink() else (e.strerror or str(e))
        msg = f"{display(path)}: refused ({what}); artifacts must hold regular files"
        raise EnvBuildError(msg) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            msg = f"{display(path)}: refused ({kind}); artifacts must hold regular files"
            raise EnvBuildError(msg)
        if st.st_size > limit:
            msg = f"{display(path)}: refused ({st.st_size} bytes, more than the {limit} allowed)"
            raise EnvBuildError(msg)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        msg = f"{display(path)}: refused (more than the {limit} bytes allowed)"
        raise EnvBuildError(msg)
    return data


def read_json_object(path: Path, limit: int = RESULT_LIMIT) -> dict[str, Any]:
    """The JSON object in ``path`` (:func:`read_regular`); EnvBuildError if it is not one
    (nesting too deep for the parser included)."""
    data = read_regular(path, limit)
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as e:
        msg = f"{display(path)}: not valid JSON ({type(e).__name__})"
        raise EnvBuildError(msg) from None
    if not isinstance(value, dict):
        msg = f"{display(path)}: not a JSON object"
        raise EnvBuildError(msg)
    return value


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
