"""Run py-rattler operations in a child process (see :mod:`envbuild.rattler.worker`).

The parent never imports py-rattler's async machinery, so no envbuild command or test can
crash at exit because of it. Each call costs one interpreter start with py-rattler's import
(~0.09 s here); :func:`warm` starts it ahead, while the caller imports and plans.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from envbuild.errors import EnvBuildError
from envbuild.rattler.protocol import FailureKind, WorkerFailure
from envbuild.util import proc


class RattlerCallError(EnvBuildError):
    """A py-rattler call failed; ``failure`` has its exception type, message and kind."""

    def __init__(self, failure: WorkerFailure) -> None:
        super().__init__(f"{failure.type}: {failure.message}")
        self.failure = failure


_WORKER = (sys.executable, "-m", "envbuild.rattler.worker")
_warm: list[proc.Started] = []  # the worker warm() started, until a call takes it


@contextlib.contextmanager
def warm(progress: bool = False) -> Iterator[proc.Started | None]:
    """Start a worker now and yield it; the first :func:`call` in the block whose
    ``progress`` matches hands it its operation instead of starting one (saving its
    start-up, ~0.09 s here). On leaving, an unused worker is told to leave (it reads end of
    input and exits). A block inside one whose worker still waits yields None: that worker
    serves."""
    if _warm:
        yield None
        return
    worker = proc.start(_WORKER, stream_stderr=progress)
    _warm.append(worker)
    try:
        yield worker
    finally:
        while _warm:
            _warm.pop().cancel()


def call(
    op: str, request: dict[str, Any], *, timeout: float | None = 3600, progress: bool = False
) -> Any:
    """Run worker operation ``op`` (``solve``, ``install``, ``index``) on a JSON ``request``.

    Output: the operation's JSON value. Raises RattlerCallError when py-rattler raised (with
    its type, message, kind and, for solves, the channel's package names), ProcessError when the
    worker died before writing its result. ``progress``: the worker draws py-rattler's
    progress bars on this process's stderr (a terminal).
    """
    with tempfile.TemporaryDirectory(prefix="envbuild-rattler-") as tmp:
        req = Path(tmp) / "request.json"
        res = Path(tmp) / "result.json"
        req.write_text(json.dumps(request))
        argv = [op, str(req), str(res)]
        if _warm and _warm[0].streams_stderr == progress:
            result = _warm.pop().finish(json.dumps(argv).encode() + b"\n", timeout)
        else:
            cmd = [*_WORKER, *argv]
            result = proc.run(cmd, timeout=timeout, check=False, stream_stderr=progress)
        if not res.exists():
            msg = proc.format_failure(result, f"py-rattler worker ({op}) died before finishing")
            raise proc.ProcessError(msg)
        payload = json.loads(res.read_text())
    if "error" in payload:
        raise RattlerCallError(WorkerFailure.from_json(payload["error"]))
    return payload["ok"]


__all__ = ["FailureKind", "RattlerCallError", "WorkerFailure", "call", "warm"]
