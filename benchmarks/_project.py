"""Shared by the benchmarks: run doit, and a temporary copy of this project whose
conda-forge mirror is the checkout's offline channel."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def doit(cwd: Path, *args: str, check: bool = True) -> float:
    """Run ``doit ARGS`` in ``cwd`` quietly; returns the wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=cwd,
        check=check,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


@contextlib.contextmanager
def temp_project(config: str = "") -> Iterator[Path]:
    """Recipes and dodo.py copied to a temporary directory, mirrored to the
    offline channel (built first if missing), sharing the checkout's package cache;
    ``config`` (TOML tables) is appended to its envbuild.toml."""
    doit(REPO, "offline_channel")
    channel = REPO / "build" / "offline-channel"
    with tempfile.TemporaryDirectory(prefix="envbuild-bench-") as tmp:
        root = Path(tmp)
        for d in ("recipes",):
            shutil.copytree(REPO / d, root / d)
        shutil.copy(REPO / "dodo.py", root / "dodo.py")
        (root / "envbuild.toml").write_text(
            f'[mirrors]\nconda-forge = "{channel}"\n[paths]\n'
            f'package_cache = "{REPO / "build" / "pkgs"}"\n' + config
        )
        yield root
