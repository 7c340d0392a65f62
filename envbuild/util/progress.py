"""Progress of long steps, on stderr.

On a terminal: a line when a step starts and one with its outcome and duration when it ends,
byte bars drawn by tqdm (https://tqdm.github.io/) where envbuild moves the bytes (packing),
and py-rattler's own download/extract/link bars in the worker (``show_progress``). Without a
terminal (CI, logs): one line per finished step with its duration. ``ENVBUILD_QUIET=1``
(``envbuild -q``) silences all of it; errors are reported as always.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

QUIET_ENV = "ENVBUILD_QUIET"


def quiet() -> bool:
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


def interactive(stream: TextIO | None = None) -> bool:
    """True if progress should be drawn live: stderr is a terminal and not quiet."""
    s = stream or sys.stderr
    return not quiet() and hasattr(s, "isatty") and s.isatty()


@contextlib.contextmanager
def step(what: str, stream: TextIO | None = None) -> Iterator[None]:
    """Show ``what`` while the block runs, then its outcome and duration (seconds).

    Terminal: ``… what`` when it starts, ``✓ what (1.2 s)`` or ``✗ what (1.2 s)`` when it ends
    (on lines of their own: the step's own messages and bars come in between). Otherwise:
    ``envbuild: what: done in 1.2 s`` (or ``failed after``). Nothing when quiet."""
    s = stream or sys.stderr
    start = time.monotonic()
    live = interactive(s)
    if live:
        s.write(f"… {what}\n")
        s.flush()
    ok = False
    try:
        yield
        ok = True
    finally:
        seconds = time.monotonic() - start
        if live:
            mark = "✓" if ok else "✗"
            s.write(f"{mark} {what} ({seconds:.1f} s)\n")
        elif not quiet():
            s.write(f"envbuild: {what}: {'done in' if ok else 'failed after'} {seconds:.1f} s\n")
        s.flush()


def bytes_bar(what: str, total: int) -> Any:
    """A tqdm bar counting ``total`` bytes on a terminal; a no-op object otherwise. Use as a
    context manager and call ``update(n)``."""
    if not interactive():
        return contextlib.nullcontext(_NoBar())
    from tqdm import tqdm

    size = shutil.get_terminal_size((80, 24))  # a pty may report 0 x 0: tqdm then hides bars
    return tqdm(total=total, desc=what, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, file=sys.stderr, ncols=size.columns, nrows=size.lines,
                mininterval=0.2)  # fmt: skip


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has left, so later writes and the
    interpreter's final flush find no closed pipe
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured)
        pass
