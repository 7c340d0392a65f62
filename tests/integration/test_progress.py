"""Issue 11: progress of long steps: drawn live on a terminal (a pseudo-terminal here), one line
per step with its duration without one (CI), nothing with ENVBUILD_QUIET=1 (`envbuild -q`)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

import pytest

from ..conftest import Project


def _on_a_terminal(p: Project, *args: str) -> str:
    """Run ``doit ARGS`` with stdout and stderr on a pseudo-terminal; returns what it drew."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "doit", *args], cwd=p.root, env={**Project.env(), "TERM": "xterm"},
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 600)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")
    os.close(leader)
    return out.decode(errors="replace")


@pytest.mark.slow
def test_progress_on_a_terminal_in_ci_and_quiet(project: Project) -> None:
    drawn = _on_a_terminal(project, "pack")
    for step in ("lock tiny", "build tiny", "smoke tiny", "pack tiny"):
        assert f"… {step}" in drawn and f"✓ {step} (" in drawn, drawn[-2000:]
    assert "packing" in drawn and "B/s" in drawn  # tqdm byte bar while packing
    assert "installing packages" in drawn  # py-rattler's own bars, drawn by the worker
    # no terminal: one line per step, with its duration, nothing redrawn
    (project.root / "recipes" / "tiny.yml").write_text(
        (project.root / "recipes" / "tiny.yml").read_text() + "# touched\n")  # fmt: skip
    plain = project.doit("--always-execute", "pack:tiny")
    assert "envbuild: build tiny: done in " in plain.stderr
    assert "envbuild: pack tiny: done in " in plain.stderr
    assert "\x1b[" not in plain.stderr and "\r" not in plain.stderr
    quiet = project.doit("--always-execute", "smoke:tiny", env={"ENVBUILD_QUIET": "1"})
    assert "smoke tiny: done in" not in quiet.stderr and "✓" not in quiet.stderr
