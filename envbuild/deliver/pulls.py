"""``.<name>.pulls``, the directory beside a pulled PATH that holds its environments
(:mod:`envbuild.deliver.pull`): where it is, how pull makes it, and when it is ours to write
to and prune (a directory someone else made, or can write to, is refused)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from envbuild.errors import EnvBuildError
from envbuild.util.redact import printable

_OURS = re.compile(r"[0-9a-f]{12}(\.json|\.partial)?|\.lock")  # what .NAME.pulls may hold


def pulls_dir(prefix: Path) -> Path:
    """``<parent>/.<name>.pulls``: the pulled environments behind the symlink ``prefix``."""
    return prefix.parent / f".{prefix.name}.pulls"


def check_pulls_dir(prefix: Path) -> None:
    """Refuse ``.<name>.pulls`` unless it is ours: a real directory (not a symlink) owned by
    this user, writable by no one else (no group or other write bit), holding only what pull
    makes (``<12 hex>``, ``<12 hex>.json``, ``<12 hex>.partial``, ``.lock``; none of them a
    symlink). Nothing is removed from a
    directory that is not. Raises EnvBuildError."""
    root = pulls_dir(prefix)
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return
    fix = f"move it away, or choose another --prefix; {prefix} is unchanged"
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise EnvBuildError(f"{root}: is {kind}, not made by envbuild pull; {fix}")
    if st.st_uid != os.geteuid():
        msg = f"{root}: owned by uid {st.st_uid}, not by this user ({os.geteuid()}); {fix}"
        raise EnvBuildError(msg)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):  # others could swap <id>.partial for a link
        msg = (
            f"{root}: writable by group or others (mode {stat.S_IMODE(st.st_mode):o}), who "
            f"could swap what pull writes there for links; `chmod go-w {root}` if you trust "
            f"them, or {fix}"
        )
        raise EnvBuildError(msg)
    strange = sorted(
        n for n in os.listdir(root) if not _OURS.fullmatch(n) or os.path.islink(root / n)
    )
    if strange:
        names = ", ".join(repr(printable(n, 60)) for n in strange[:5])
        more = f" and {len(strange) - 5} more" if len(strange) > 5 else ""
        msg = f"{root}: holds entries envbuild pull did not make ({names}{more}); {fix}"
        raise EnvBuildError(msg)


def make_pulls_dir(root: Path) -> None:
    """Make ``root`` if it is missing, ``rwxr-xr-x`` whatever the umask (``umask 002`` would
    leave it group-writable, which :func:`check_pulls_dir` refuses)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        root.mkdir()
    except FileExistsError:
        return
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, 0o755)
    finally:
        os.close(fd)
