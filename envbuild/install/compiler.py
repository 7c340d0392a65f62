"""Bytecode compiled by several interpreters at once, fed work while they run.

Each worker is the environment's own interpreter (``-I -B``) running :data:`DRIVER`: it reads
one JSON line ``[root, [relative .py path, ...]]`` at a time, compiles each file with
``compileall.compile_file`` exactly as ``python -m compileall -f --invalidation-mode
checked-hash -s <root>`` would (the same function, the same arguments: the bytes do not
depend on which worker, in which order, or how the files were grouped), and answers one
line. Work is a shared queue of small chunks (at most :data:`CHUNK_FILES` files or
:data:`CHUNK_BYTES` of source), so every worker stays busy until the end, however unequal the
packages; chunks can be added while the workers already run (packages compiled as the
installer finishes them). Compiling from a list runs on one core in ``compileall`` itself:
its ``-j`` only applies to directories.

A job (one package) is done when all its chunks are: ``on_done(job)`` then runs in the
worker's thread, so what follows a package's compilation (hashing, keeping it) overlaps the
compilation of the others.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from envbuild.util import proc

CHUNK_FILES = 48
CHUNK_BYTES = 384 * 1024

# Runs in the environment's interpreter: standard library only. Files that do not compile
# (Python 2 test data, templates) get no bytecode, as with ``compileall -q``.
DRIVER = """\
import compileall, json, py_compile, sys
mode = py_compile.PycInvalidationMode.CHECKED_HASH
for line in sys.stdin:
    root, files = json.loads(line)
    for rel in files:
        compileall.compile_file(root + "/" + rel, force=True, quiet=2, stripdir=root,
                                invalidation_mode=mode)
    sys.stdout.write("done\\n")
    sys.stdout.flush()
"""


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def chunks(files: Sequence[tuple[str, int]]) -> list[list[str]]:
    """``files`` ((relative path, size in bytes) pairs, in order) cut into chunks of at most
    :data:`CHUNK_FILES` files and about :data:`CHUNK_BYTES` of source."""
    out: list[list[str]] = []
    size = CHUNK_BYTES
    for rel, n in files:
        if size >= CHUNK_BYTES or len(out[-1]) >= CHUNK_FILES:
            out.append([])
            size = 0
        out[-1].append(rel)
        size += n
    return out


class Compiler:
    """A pool of ``workers`` interpreters (``python``, started at the first :meth:`add`)
    compiling ``.py`` files under ``root`` in place, each ``.pyc`` recording its path relative
    to ``root``. Use :meth:`add` any number of times, then :meth:`finish` (or :meth:`abandon`).
    """

    def __init__(
        self,
        python: Path,
        root: Path,
        on_done: Callable[[str], None],
        workers: int | None = None,
    ) -> None:
        self.python, self.root, self.on_done = python, root, on_done
        self.workers = workers or default_workers()
        self._queue: queue.Queue[tuple[str, list[str]] | None] = queue.Queue()
        self._left: dict[str, int] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._dialogues: list[proc.Dialogue] = []
        self._errors: list[BaseException] = []
        self._stopping = threading.Event()

    def add(self, job: str, files: Sequence[tuple[str, int]]) -> None:
        """Compile ``files`` ((path relative to root, size) pairs); ``on_done(job)`` follows
        once all are compiled (at once for an empty list). ``job`` names are unique."""
        parts = chunks(files)
        if not parts:
            self.on_done(job)
            return
        with self._lock:
            self._left[job] = len(parts)
        if not self._threads:
            self._start()
        for part in parts:
            self._queue.put((job, part))

    def _start(self) -> None:
        for _ in range(self.workers):
            thread = threading.Thread(target=self._work, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        # started by the thread that talks to it: a child is killed when the thread that
        # started it ends (PR_SET_PDEATHSIG follows the thread, not the process)
        argv = [str(self.python), "-I", "-B", "-c", DRIVER]
        dialogue: proc.Dialogue | None = None
        try:
            dialogue = proc.converse(argv)
            with self._lock:
                self._dialogues.append(dialogue)
        except BaseException as e:
            self._fail(e)
        root = str(self.root)
        while (item := self._queue.get()) is not None:
            if dialogue is None or self._stopping.is_set():
                continue  # abandoned or failed: drain without compiling
            job, files = item
            try:
                dialogue.ask(json.dumps([root, files]))
                with self._lock:
                    self._left[job] -= 1
                    done = self._left[job] == 0
                if done:
                    self.on_done(job)
            except BaseException as e:  # reported by finish(); the others stop
                self._fail(e)
        if dialogue is not None:
            dialogue.close()

    def _fail(self, error: BaseException) -> None:
        self._errors.append(error)
        self._stopping.set()

    def _stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads, self._dialogues = [], []

    def finish(self) -> None:
        """Wait until everything added is compiled and its ``on_done`` has run; stop the
        workers. Raises the first error of a worker (ProcessError: an interpreter left, or
        an ``on_done`` error), after stopping the others."""
        self._stop()
        if self._errors:
            raise self._errors[0]

    def abandon(self) -> None:
        """Stop now: chunks not yet started are dropped, the ones running finish (nothing
        writes under ``root`` once this returns). Errors are dropped too."""
        self._stopping.set()
        with self._lock:
            for dialogue in self._dialogues:
                dialogue.kill()
        self._stop()
        self._errors.clear()


__all__ = ["DRIVER", "Compiler", "chunks", "default_workers"]
