"""A page as a person's browser shows it: Debian's headless Chromium loads a local file, and we
read back the DOM after it ran, everything its console said, and a screenshot.

Console messages come from ``--enable-logging=stderr --v=0`` (Chromium prints each as
``...:INFO:CONSOLE:<line>] "<message>", source: <url> (<line>)``, whatever the level). A page
that runs no script of its own says nothing there, so every console line counts as an error:
a script the page's policy blocked, a resource it refused to load, a script that ran and
logged. Chromium's command-line switches:
https://developer.chrome.com/docs/chromium/headless
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\] (.*)")
TIMEOUT = 60  # seconds for one Chromium run


@dataclass(frozen=True, slots=True)
class Loaded:
    """What Chromium made of a page: the serialized DOM after load, its console lines."""

    dom: str
    console: tuple[str, ...]


def chromium() -> str:
    """The chromium binary; skips the test when absent, fails it in CI
    (ENVBUILD_REQUIRE_DOCKER, set by .ci/run, whose scripts/services.sh installs it)."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("ENVBUILD_REQUIRE_DOCKER"):
            pytest.fail("chromium is not installed (scripts/services.sh installs it)")
        pytest.skip("chromium is not installed (scripts/services.sh installs Debian's)")
    return found


def _run(page: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    cmd = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={home / 'profile'}", "--enable-logging=stderr", "--v=0",
           *args, page.resolve().as_uri()]  # fmt: skip
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=True)


def load(page: Path, home: Path, screenshot: Path | None = None) -> Loaded:
    """Load ``page`` (a local file, as ``file://``) in headless Chromium with profile and HOME
    under ``home``; write a 1400x900 ``screenshot`` (PNG) if given."""
    run = _run(page, "--dump-dom", home=home)
    console = tuple(m.group(1) for m in map(_CONSOLE.search, run.stderr.splitlines()) if m)
    if screenshot is not None:
        _run(page, "--hide-scrollbars", "--window-size=1400,900",
             f"--screenshot={screenshot}", home=home)  # fmt: skip
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return Loaded(dom=run.stdout, console=console)
