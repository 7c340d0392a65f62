"""envbuild beside a real conda: the same lock, the same local channel, the same machine.

    python benchmarks/vs_conda.py [--recipe ml] [--runs 3] [--conda DIR]

For recipes/<recipe>.yml (default ``ml``), locked once: ``conda create --file <explicit file>``
(conda 26.7.1 from ``../shared/tools/conda-peer``, installed into a temporary directory unless
``--conda`` names one; classic solver, offline, ``conda-forge`` mapped to the offline channel)
against ``doit build env=<recipe>``,

* cold: empty package caches (conda's pkgs dir; envbuild's package and bytecode caches), so
  both extract every archive and envbuild compiles its bytecode;
* warm: caches kept, the environment made again (median of ``--runs``);

and the wall time of ``python -c 'import sklearn, pandas'`` in each result, first run (a
writable conda environment compiles what it imports then) and second. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import REPO, doit, temp_project

IMPORTS = "import sklearn, pandas"
CANONICAL = "https://conda.anaconda.org/conda-forge/"


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def install_conda(dest: Path) -> Path:
    """conda 26.7.1 from shared/tools/conda-peer (about 10 s); returns its ``bin/conda``."""
    peer = REPO.parent / "shared" / "tools" / "conda-peer"
    if not peer.is_dir():
        peer = Path("/work/shared/tools/conda-peer")
    subprocess.run(["bash", str(peer / "install.sh"), str(dest), sys.executable], check=True)
    return dest / "bin" / "conda"


def conda_env(scratch: Path, channel: Path) -> dict[str, str]:
    """Environment variables for an offline conda whose conda-forge is ``channel``."""
    alias = scratch / "alias"
    alias.mkdir(parents=True, exist_ok=True)
    if not (alias / "conda-forge").exists():
        (alias / "conda-forge").symlink_to(channel)
    condarc = scratch / "condarc"
    condarc.write_text(
        "solver: classic\noffline: true\nalways_yes: true\nchannels: [conda-forge]\n"
        f"channel_alias: file://{alias}\npkgs_dirs: [{scratch / 'pkgs'}]\n"
        f"envs_dirs: [{scratch / 'envs'}]\nchannel_priority: strict\n"
        "add_pip_as_python_dependency: false\n"
    )
    (scratch / "home").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CONDA"))}
    return {**env, "HOME": str(scratch / "home"), "CONDARC": str(condarc)}


def import_times(prefix: Path) -> tuple[float, float]:
    """(first, second) wall time of ``python -c IMPORTS`` in the environment at ``prefix``."""
    python = str(prefix / "bin" / "python")
    return timed([python, "-c", IMPORTS]), timed([python, "-c", IMPORTS])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", default="ml")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--conda", type=Path, help="a conda-peer install (default: a fresh one)")
    args = ap.parse_args()
    name = args.recipe
    with tempfile.TemporaryDirectory(prefix="envbuild-vs-conda-") as tmp:
        scratch = Path(tmp)
        conda = args.conda / "bin" / "conda" if args.conda else install_conda(scratch / "conda")
        channel = REPO / "build" / "offline-channel"
        caches = f'[paths]\npackage_cache = "{scratch / "pkgs"}"\n'
        with temp_project() as root:
            toml = root / "envbuild.toml"
            # our own package (and bytecode) cache, empty for the cold build
            text = toml.read_text().split("[paths]")[0] + caches
            toml.write_text(text + "[builds]\nregister = false\n")
            doit(root, "lock", f"env={name}")
            doit(root, "export", f"env={name}")
            explicit = next((root / "dist").glob(f"{name}-*.explicit.txt"))
            local = scratch / "explicit.txt"
            local.write_text(explicit.read_text().replace(CANONICAL, f"file://{channel}/"))
            env = conda_env(scratch / "c", channel)
            target = scratch / "conda-env"

            def conda_create() -> float:
                shutil.rmtree(target, ignore_errors=True)
                return timed(
                    [str(conda), "create", "-q", "-p", str(target), "--file", str(local)], env
                )

            def envbuild_build() -> float:
                (root / "build" / "state" / f"{name}.build.json").unlink(missing_ok=True)
                return doit(root, "build", f"env={name}")

            rows = []
            conda_cold = conda_create()
            conda_imports = import_times(target)
            conda_warm = statistics.median(conda_create() for _ in range(args.runs))
            ours_cold = envbuild_build()
            ours_imports = import_times(root / "envs" / name)
            ours_warm = statistics.median(envbuild_build() for _ in range(args.runs))
            rows.append(("create, cold caches", ours_cold, conda_cold))
            rows.append((f"create, warm caches (median of {args.runs})", ours_warm, conda_warm))
            rows.append((f"`{IMPORTS}`, first run", ours_imports[0], conda_imports[0]))
            rows.append((f"`{IMPORTS}`, second run", ours_imports[1], conda_imports[1]))
    print(f"| {name} | envbuild | conda 26.7.1 | envbuild / conda |")
    print("|---|---|---|---|")
    for label, ours, theirs in rows:
        print(f"| {label} | {ours:.2f} s | {theirs:.2f} s | {ours / theirs:.2f}x |")


if __name__ == "__main__":
    main()
