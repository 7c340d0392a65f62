"""envbuild beside a real conda: the same lock, the same local channel, the same machine.

    python benchmarks/vs_conda.py [--recipe ml] [--runs 3] [--conda DIR]

For recipes/<recipe>.yml (default ``ml``), locked once: ``conda create --file <explicit file>``
(conda 26.7.1 from ``../shared/tools/conda-peer``, installed into a temporary directory unless
``--conda`` names one; classic solver, offline, ``conda-forge`` mapped to the offline channel)
against ``doit build env=<recipe>``,

* cold: empty package caches (conda's pkgs dir; envbuild's package and bytecode caches), so
  both extract every archive and envbuild compiles its bytecode (median of ``--runs``);
* warm: caches kept, the environment made again (median of ``--runs``);

and the wall time of ``python -c 'import sklearn, pandas'`` in each result, first run (a
writable conda environment compiles what it imports then) and second. The two tools take
turns run by run, so a change in the machine's load meets both. Prints a Markdown table with
issue 21's goals beside the ratios, the load average (1 min) before and after each group and
the number of cores.

Every timed process may write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped): conda and
envbuild run from their own bytecode as installed tools do, and a conda environment keeps what
its first import compiled.
"""

from __future__ import annotations

import argparse
import os
import resource
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
# issue 21: envbuild / conda at most this, per row (None: no goal)
GOALS = {"cold": 1.0, "warm": 0.25}
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # for every process started from here


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far, descendants
    included: a figure the machine's other load changes less than wall time."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


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

            def cold_pair() -> tuple[float, float]:
                # a first build, as conda's create into a removed prefix (untimed both)
                shutil.rmtree(root / "envs", ignore_errors=True)
                shutil.rmtree(scratch / "c" / "pkgs", ignore_errors=True)
                shutil.rmtree(scratch / "pkgs", ignore_errors=True)
                shutil.rmtree(scratch / "pkgs-pyc", ignore_errors=True)  # the bytecode cache
                before = children_cpu()
                ours = envbuild_build()
                between = children_cpu()
                theirs = conda_create()
                cpu.append((between - before, children_cpu() - between))
                return ours, theirs

            cpu: list[tuple[float, float]] = []
            doit(root, "build", f"env={name}")  # untimed: envbuild's own bytecode written
            loads = [load()]
            cold = [cold_pair() for _ in range(args.runs)]
            ours_imports, conda_imports = import_times(root / "envs" / name), import_times(target)
            loads.append(load())
            warm = [(envbuild_build(), conda_create()) for _ in range(args.runs)]
            loads.append(load())
    ours_cold = statistics.median(c[0] for c in cold)
    conda_cold = statistics.median(c[1] for c in cold)
    ours_warm = statistics.median(w[0] for w in warm)
    conda_warm = statistics.median(w[1] for w in warm)
    n = args.runs
    rows = [
        (f"create, cold caches (median of {n}; load {loads[0]} -> {loads[1]})", ours_cold,
         conda_cold, GOALS["cold"]),
        (f"create, warm caches (median of {n}; load {loads[1]} -> {loads[2]})", ours_warm,
         conda_warm, GOALS["warm"]),
        (f"`{IMPORTS}`, first run", ours_imports[0], conda_imports[0], None),
        (f"`{IMPORTS}`, second run", ours_imports[1], conda_imports[1], None),
    ]  # fmt: skip
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; every run, envbuild then conda: cold {fmt(cold)}; warm {fmt(warm)}")
    print(f"cold, CPU seconds (user + system, all processes): {fmt(cpu)}")
    print()
    print(f"| {name} | envbuild | conda 26.7.1 | envbuild / conda | goal | met |")
    print("|---|---|---|---|---|---|")
    for label, ours, theirs, goal in rows:
        ratio = ours / theirs
        judged = ("yes" if ratio <= goal else "no") if goal is not None else ""
        target = f"<= {goal:.2f}x" if goal is not None else ""
        print(f"| {label} | {ours:.2f} s | {theirs:.2f} s | {ratio:.2f}x | {target} | {judged} |")


def fmt(pairs: list[tuple[float, float]]) -> str:
    return ", ".join(f"{a:.2f}/{b:.2f} s" for a, b in pairs)


if __name__ == "__main__":
    main()
