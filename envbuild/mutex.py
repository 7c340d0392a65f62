"""Inter-process exclusion: one build (or pack) of an environment at a time.

``hold(path, what)`` takes an exclusive ``fcntl.flock`` on ``path``; if another process holds
it, logs who (its pid, written in the file) and waits. The kernel drops the lock when the holder
exits, even by kill -9, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from envbuild.errors import EnvBuildError

log = logging.getLogger("envbuild")


@contextlib.contextmanager
def hold(path: Path, what: str, timeout: float = 3600) -> Iterator[None]:
    """Hold the exclusive lock ``path`` while the block runs.

    Waits (logging once) while another process holds it; raises EnvBuildError after
    ``timeout`` seconds of waiting, or when the lock file cannot be created or written (a full
    or read-only disk), naming the file and the OS error.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise EnvBuildError(_io_message(path, what, e)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            log.info("waiting for another %s (pid %s) to finish", what, holder)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        msg = (
                            f"gave up after {timeout:g} s waiting for another {what} "
                            f"(pid {holder}, lock {path})"
                        )
                        raise EnvBuildError(msg) from None
                    time.sleep(0.2)
        try:
            pid = str(os.getpid()).encode()
            os.pwrite(fd, pid, 0)
            os.ftruncate(fd, len(pid))
        except OSError as e:
            raise EnvBuildError(_io_message(path, what, e)) from None
        yield
    finally:
        os.close(fd)  # releases the flock


def _io_message(path: Path, what: str, e: OSError) -> str:
    return (
        f"{path}: cannot take the lock for the {what}: {e.strerror or e}; "
        "free disk space (or make the directory writable) and run the command again"
    )


@contextlib.contextmanager
def try_hold(path: Path) -> Iterator[bool]:
    """Take the exclusive ``flock`` on ``path`` if nobody holds it: yields True while held,
    False (at once, without waiting) if another process holds it or it cannot be opened."""
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
