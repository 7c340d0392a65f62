"""The py-rattler worker started ahead (rattler_client.warm) and the subprocess handle behind
it (proc.start): real worker processes, a real index of a real channel copy."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from envbuild.errors import ProcessError
from envbuild.rattler import client as rattler_client
from envbuild.util import proc


def _channel_copy(channel: Path, tmp_path: Path) -> Path:
    own = tmp_path / "channel"
    shutil.copytree(channel, own)
    for repodata in own.glob("*/repodata.json"):
        repodata.unlink()
    return own


def test_worker_started_ahead_runs_the_operation_given_later(channel: Path, tmp_path: Path) -> None:
    own = _channel_copy(channel, tmp_path)
    with rattler_client.warm() as worker:
        assert worker is not None and worker.poll() is None  # waiting for its operation
        with rattler_client.warm() as inner:
            assert inner is None  # nested: the waiting worker serves
        rattler_client.call("index", {"channel_dir": str(own)})
        assert worker.poll() == 0  # it ran the index and left
    assert (own / "noarch" / "repodata.json").is_file()


def test_unused_worker_leaves_at_the_end_of_the_block(channel: Path, tmp_path: Path) -> None:
    own = _channel_copy(channel, tmp_path)
    with rattler_client.warm(progress=False) as worker:
        assert worker is not None
        # a call that draws progress bars cannot use it: a worker of its own runs
        rattler_client.call("index", {"channel_dir": str(own)}, progress=True)
        assert worker.poll() is None
    assert worker.poll() == 0
    assert (own / "noarch" / "repodata.json").is_file()


def test_started_command_reports_missing_command_and_timeout() -> None:
    with pytest.raises(ProcessError, match="command not found: no-such-command-here"):
        proc.start(["no-such-command-here"])
    outlives = "import sys, time; sys.stdin.read(); time.sleep(60)"  # sleep: past the timeout
    slow = proc.start([sys.executable, "-c", outlives])
    with pytest.raises(ProcessError, match=r"timed out after 0\.5 s"):
        slow.finish(b"go\n", timeout=0.5)
    echo = proc.start([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"])
    result = echo.finish(b"hello\n", timeout=30)
    assert result.returncode == 0 and result.stdout == "HELLO\n\n"
