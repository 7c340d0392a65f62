"""Lock realistic specs against the real repodata snapshots in ../shared/data/repodata/.

Prints, per solve: cold time (fresh repodata cache), warm time (same cache again), and the
number of packages in the lockfile. Usage: python benchmarks/lock_repodata.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import yaml

from envbuild.lock.solve import lock_recipe
from envbuild.project import load_project
from envbuild.recipe.load import load_recipe

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "repodata"
CASES = {
    "defaults-2018-index4": [
        ["python 3.6.*", "numpy", "pandas", "scipy", "matplotlib"],
        [
            "python 3.6.*",
            "numpy",
            "pandas",
            "scipy",
            "matplotlib",
            "dask",
            "notebook",
            "bokeh",
            "sqlalchemy",
            "conda-build",
        ],
    ],
    "conda-forge-2024-py39tree": [
        ["python 3.9.*", "curl", "sqlite", "pip", "packaging"],
        ["python 3.9.7.*", "openssl 1.1.*", "curl"],
    ],
}


def run(root: Path, channel: str, specs: list[str]) -> tuple[float, int]:
    project = load_project(root)
    recipe = load_recipe(project.recipe_file("bench"))
    start = time.perf_counter()
    result = lock_recipe(recipe, project)
    seconds = time.perf_counter() - start
    n = len(yaml.safe_load(result.path.read_text())["package"])
    return seconds, n


def main() -> None:
    print(f"{'channel':28s} {'specs':>5s} {'cold s':>7s} {'warm s':>7s} {'packages':>8s}")
    for channel, solves in CASES.items():
        for specs in solves:
            with tempfile.TemporaryDirectory(prefix="envbuild-bench-") as tmp:
                root = Path(tmp)
                (root / "recipes").mkdir()
                (root / "envbuild.toml").write_text(f'[mirrors]\nbench = "{DATA / channel}"\n')
                (root / "recipes" / "bench.yml").write_text(
                    yaml.safe_dump(
                        {"channels": ["bench"], "platforms": ["linux-64"], "dependencies": specs}
                    )
                )
                cold, n = run(root, channel, specs)
                warm, n2 = run(root, channel, specs)
                assert n == n2
                print(f"{channel:28s} {len(specs):5d} {cold:7.2f} {warm:7.2f} {n:8d}")


if __name__ == "__main__":
    main()
