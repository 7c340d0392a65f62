"""How loading the task graph and deciding "nothing to do" grows with the number of recipes.

For 3, 30 and 100 generated recipes against the offline channel, prints (medians of 5):
no-op ``doit lock`` (everything locked), ``doit list``, a fresh ``doit -n 2 lock``, and
no-op ``doit pack`` (the whole graph short of images: every recipe locked, built, smoked and
packed first, with ``doit -n 2 pack``), beside the floor measured in the same run: starting
Python and importing doit's command line. Images are left out: 100 Docker build contexts
would need ~14 GB of disk.

    python benchmarks/noop.py [--sizes 3,30,100]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from _project import doit, temp_project

PACKAGES = ("python-dateutil", "threadpoolctl", "joblib", "numpy", "narwhals")


def recipe(i: int) -> str:
    """A small distinct recipe: python plus one or two packages, own smoke imports."""
    pkgs = [PACKAGES[i % len(PACKAGES)], PACKAGES[(i // len(PACKAGES)) % len(PACKAGES)]]
    deps = "\n".join(f"  - {p}" for p in dict.fromkeys(pkgs))
    return f"name: r{i:03d}\ndependencies:\n  - python 3.11.*\n{deps}\n"


def median(fn: object, n: int = 5) -> float:
    return statistics.median(fn() for _ in range(n))  # type: ignore[operator]


def floor() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import doit.doit_cmd"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="3,30,100")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    base = median(floor)
    print(f"floor (python + import doit): {base:.3f} s")
    header = ("recipes", "no-op lock", "÷ floor", "list", "÷ floor", "-n 2 lock", "no-op pack")
    print("{:>7} {:>11} {:>8} {:>7} {:>8} {:>10} {:>11}".format(*header))
    for n in sizes:
        with temp_project() as root:
            shutil.rmtree(root / "recipes")
            (root / "recipes").mkdir()
            for i in range(n):
                (root / "recipes" / f"r{i:03d}.yml").write_text(recipe(i))
            fresh = doit(root, "-n", "2", "lock")
            noop = median(lambda root=root: doit(root, "lock"))  # type: ignore[misc]
            listing = median(lambda root=root: doit(root, "list"))  # type: ignore[misc]
            doit(root, "-n", "2", "pack")
            packed = median(lambda root=root: doit(root, "pack"))  # type: ignore[misc]
            print(
                f"{n:>7} {noop:>9.3f} s {noop / base:>7.1f}x {listing:>5.3f} s "
                f"{listing / base:>7.1f}x {fresh:>8.1f} s {packed:>9.3f} s"
            )


if __name__ == "__main__":
    main()
