"""Print wall times of each stage for recipes/ml.yml and of a no-op `doit` over all recipes.

Runs in a temporary copy of the project (see _project.py). Usage: python benchmarks/stages.py
"""

from __future__ import annotations

from _project import doit, temp_project


def main() -> None:
    with temp_project() as root:
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
