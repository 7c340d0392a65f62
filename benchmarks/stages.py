"""Print wall times of each stage for recipes/ml.yml and of a no-op `doit` over all recipes.

Runs in a temporary copy of the project (recipes, templates, dodo.py) whose conda-forge mirror
is this checkout's offline channel (built first if missing). Usage:
    python benchmarks/stages.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def doit(cwd: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    t = doit(REPO, "offline_channel")
    print(f"offline_channel (up to date or built): {t:7.2f} s")
    channel = REPO / "build" / "offline-channel"
    with tempfile.TemporaryDirectory(prefix="envbuild-bench-") as tmp:
        root = Path(tmp)
        for d in ("recipes", "templates"):
            shutil.copytree(REPO / d, root / d)
        shutil.copy(REPO / "dodo.py", root / "dodo.py")
        (root / "envbuild.toml").write_text(
            f'[mirrors]\nconda-forge = "{channel}"\n[paths]\n'
            f'package_cache = "{REPO / "build" / "pkgs"}"\n'
        )
        for stage in ("lock", "build", "smoke", "pack", "docker"):
            print(f"{stage + ' env=ml':18s} {doit(root, stage, 'env=ml'):7.2f} s")
        doit(root)  # everything else, so that the next run is a no-op
        runs = [doit(root) for _ in range(5)]
        print(
            f"no-op doit, all {len(list((root / 'recipes').glob('*.yml')))} recipes: "
            f"{min(runs):.2f} s (min of 5), {sum(runs) / len(runs):.2f} s (mean)"
        )
        tarball = next((root / "dist").glob("ml-*.tar.*"))
        print(f"{tarball.name}: {tarball.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
