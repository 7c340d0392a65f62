"""The ``large`` tier (issue 30): a real data-science stack from PyPI wheels.

``pins/offline-large.txt`` pins 230 real wheels (jupyterlab, matplotlib, scipy, pandas,
pyarrow, polars, scikit-learn, statsmodels, plotly, bokeh, panel, dask/distributed, numba,
sympy, jax, transformers... for CPython 3.11 on x86_64 manylinux, with hashes); its offline
channel is built into ``build/offline-large-channel`` (the wheel and conversion caches shared
with the demo's, ``build/offline-cache``), and ``benchmarks/recipes/large.yml`` is locked,
built and smoke-checked against it in a temporary project. Prints the stage times (wall and
CPU seconds of the children) and the environment's packages, installed bytes and files.

    .venv/bin/python benchmarks/large.py [--keep DIR]

:func:`large_project` is the temporary project, for other benchmarks (``benchmarks/scale.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _project import REPO

PINS = REPO / "pins" / "offline-large.txt"
RECIPE = REPO / "benchmarks" / "recipes" / "large.yml"
CHANNEL = REPO / "build" / "offline-large-channel"


def _requirements() -> list[str]:
    for line in PINS.read_text().splitlines():
        if line.startswith("# requirements: "):
            return [str(r) for r in json.loads(line.removeprefix("# requirements: "))]
    msg = f"{PINS}: no '# requirements:' line"
    raise SystemExit(msg)


def config() -> str:
    """envbuild.toml of a project whose conda-forge is the ``large`` tier's channel."""
    build = REPO / "build"
    return (
        f'[mirrors]\nconda-forge = "{CHANNEL}"\n'
        f'[paths]\noffline_channel = "{CHANNEL}"\noffline_cache = "{build / "offline-cache"}"\n'
        f'package_cache = "{build / "pkgs"}"\n'
        f'[offline]\npins = "{PINS}"\nrequirements = {json.dumps(_requirements())}\n'
    )


@contextlib.contextmanager
def large_project(keep: Path | None = None) -> Iterator[Path]:
    """A project (``keep``, or a temporary directory removed afterwards) with
    ``recipes/large.yml`` and :func:`config`; the channel is built on first ``doit``."""
    with tempfile.TemporaryDirectory(prefix="envbuild-large-") as tmp:
        root = keep or Path(tmp)
        (root / "recipes").mkdir(parents=True, exist_ok=True)
        shutil.copy(RECIPE, root / "recipes" / "large.yml")
        shutil.copy(REPO / "dodo.py", root / "dodo.py")
        (root / "envbuild.toml").write_text(config())
        yield root


def timed(root: Path, *args: str) -> tuple[float, float]:
    """(wall, CPU) seconds of ``doit ARGS`` in ``root``; exits with doit's output if it
    fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "doit", *args], cwd=root, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"doit {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu


def tally(prefix: Path) -> tuple[int, int]:
    """(bytes, files) of the regular files and links under ``prefix`` (not following links)."""
    size = files = 0
    for top, _dirs, names in os.walk(prefix):
        for name in names:
            st = os.lstat(os.path.join(top, name))
            size, files = size + st.st_size, files + 1
    return size, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="build the project here and keep it")
    keep = parser.parse_args().keep
    with large_project(keep) as root:
        rows = {}
        for stage, args in (
            ("offline channel", ("offline_channel",)),
            ("lock", ("lock",)),
            ("cold build", ("build", "env=large")),
            ("smoke", ("smoke", "env=large")),
        ):
            rows[stage] = timed(root, *args)
            print(f"{stage:>16}: {rows[stage][0]:8.1f} s wall {rows[stage][1]:8.1f} s CPU")
        lock = (root / "locks" / "large.conda-lock.yml").read_text()
        packages = lock.count("\n- name: ")
        size, files = tally((root / "envs" / "large").resolve())
        print(f"large: {packages} packages, {size / 1e9:.2f} GB installed, {files} files")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - started:.0f} s")
