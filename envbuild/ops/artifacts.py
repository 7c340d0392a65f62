"""Reading files that come from outside (downloaded CI artifacts) defensively.

Every read names the file in its error: a path that is a symlink, a directory or another
non-regular file is refused (``O_NOFOLLOW``, then ``fstat`` on what was opened, so a swap
between check and read cannot redirect it), and at most ``limit`` bytes are read (a bigger
file is refused, never loaded whole).
"""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path
from typing import Any

from envbuild.errors import EnvBuildError
from envbuild.recipe.validate import display
from envbuild.util.fs import read_bounded

RESULT_LIMIT = 64 * 1024  # a result.json is a few hundred bytes
FILE_LIMIT = 64 * 1024 * 1024  # lockfiles and explicit files of thousands of packages


def read_regular(path: Path, limit: int = FILE_LIMIT) -> bytes:
    """The bytes of the regular file ``path`` (not through a symlink, at most ``limit``
    bytes: :func:`envbuild.util.fs.read_bounded`). Raises EnvBuildError naming the path and
    what it is instead."""
    try:
        return read_bounded(path, limit, follow_symlinks=False)
    except FileNotFoundError:
        msg = f"{display(path)}: missing"
        raise EnvBuildError(msg) from None
    except OSError as e:
        if e.errno == errno.EFBIG:
            msg = f"{display(path)}: refused (more than the {limit} bytes allowed: {e.strerror})"
        else:
            what = "a symlink" if path.is_symlink() else (e.strerror or str(e))
            msg = f"{display(path)}: refused ({what}); artifacts must hold regular files"
        raise EnvBuildError(msg) from None


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
