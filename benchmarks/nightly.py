"""Quiet and changed nights for all recipes, beside a fresh `doit lock` of all recipes measured
in the same run (issue 12's target: a quiet night <= 1.5 x that fresh lock), and the image and
dangling-image counts before and after three quiet nights.

Runs in a temporary copy of the project (see _project.py), with a Docker engine when one is
reachable. Usage: python benchmarks/nightly.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from _project import doit, temp_project


def _images() -> tuple[int, int]:
    """(envbuild images, dangling envbuild images) on the engine, or (-1, -1) without one."""

    def count(*filters: str) -> int:
        args = [a for f in filters for a in ("--filter", f)]
        r = subprocess.run(["docker", "images", "-q", *args], capture_output=True, text=True)
        return len(set(r.stdout.split())) if r.returncode == 0 else -1

    return count("label=org.envbuild.recipe"), count("label=org.envbuild.recipe", "dangling=true")


def _statuses(root: Path) -> str:
    report = json.loads((root / "reports" / "nightly.json").read_text())
    return ", ".join(f"{r['recipe']} {r['status']}" for r in report)


def main() -> None:
    with temp_project() as root:
        doit(root, "lock")  # warm repodata and the package cache
        shutil.rmtree(root / "locks")
        for stamp in (root / "build" / "state").glob("*.lock.json"):
            stamp.unlink()
        fresh = doit(root, "lock")
        changed = doit(root, "nightly")  # nothing built yet: every recipe changes
        changed_status = _statuses(root)
        before = _images()
        quiet = [doit(root, "nightly") for _ in range(3)]
        after = _images()
        quiet_status = _statuses(root)
        builds = {d.name: len([b for b in d.iterdir() if b.is_dir()])
                  for d in (root / "envs" / ".builds").iterdir() if d.is_dir()}  # fmt: skip
    print(f"fresh `doit lock`, all recipes (peer):    {fresh:6.2f} s")
    print(f"changed night, all recipes:              {changed:6.2f} s  ({changed_status})")
    for i, q in enumerate(quiet, 1):
        ratio = q / fresh
        print(f"quiet night {i}:                           {q:6.2f} s  = {ratio:4.2f} x fresh lock"
              " (target <= 1.5)")  # fmt: skip
    print(f"  last quiet night: {quiet_status}")
    print(f"builds kept per environment after 4 nights: {builds}")
    if before[0] < 0:
        print("no Docker engine reachable: image counts not measured")
    else:
        print(f"envbuild images before the quiet nights: {before[0]} ({before[1]} dangling)")
        print(f"envbuild images after 3 quiet nights:    {after[0]} ({after[1]} dangling)")


if __name__ == "__main__":
    main()
