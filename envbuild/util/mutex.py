"""Inter-process exclusion: one build (or pack, lock, …) of an environment at a time.

``hold(path, what)`` takes an exclusive lock on ``path`` with ``filelock``
(https://py-filelock.readthedocs.io/: ``flock`` on Unix, ``msvcrt.locking`` on Windows, so the
package imports and locks on every platform). If another process holds it, logs what it waits
for and waits. The operating system drops the lock when the holder exits, even by kill -9, so a
crash never leaves a stale lock behind.

``try_hold(path)`` takes someone else's ``flock`` (py-rattler's package-cache entry locks)
without waiting and without touching the file's content.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import filelock

from envbuild.errors import EnvBuildError

log = logging.getLogger("envbuild")


@contextlib.contextmanager
def hold(path: Path, what: str, timeout: float = 3600) -> Iterator[None]:
    """Hold the exclusive lock ``path`` while the block runs.

    Waits (logging once) while another process holds it; raises EnvBuildError after
    ``timeout`` seconds of waiting, or when the lock file cannot be created or opened (a full
    or read-only disk, a symlink planted in its place), naming the file and the OS error.
    """
    lock = filelock.FileLock(path, thread_local=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            log.info("waiting for another %s to finish (lock %s)", what, path)
            lock.acquire(timeout=timeout)
    except filelock.Timeout:
        msg = f"gave up after {timeout:g} s waiting for another {what} (lock {path})"
        raise EnvBuildError(msg) from None
    except OSError as e:
        raise EnvBuildError(_io_message(path, what, e)) from None
    try:
        yield
    finally:
        lock.release()


def _io_message(path: Path, what: str, e: OSError) -> str:
    return (
        f"{path}: cannot take the lock for the {what}: {e.strerror or e}; "
        "make sure it is a plain file in a writable directory with free space, then run the "
        "command again"
    )


@contextlib.contextmanager
def try_hold(path: Path) -> Iterator[bool]:
    """Take the exclusive ``flock`` on ``path`` if nobody holds it: yields True while held,
    False (at once, without waiting) if another process holds it, it cannot be opened, or this
    platform has no ``flock`` (then nothing guarded by it may be touched). The file's content
    (py-rattler keeps a revision and sha256 in its cache locks) is left as it is."""
    try:
        import fcntl
    except ImportError:  # Windows: py-rattler's lock there is not an flock
        yield False
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
