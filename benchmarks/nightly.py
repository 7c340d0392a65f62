"""Print the nightly wall time for all recipes with a warm package cache, and the image build
time and size for ml (when a Docker engine is reachable).

Runs in a temporary copy of the project (see _project.py). Usage: python benchmarks/nightly.py
"""

from __future__ import annotations

import json

from _project import doit, temp_project


def main() -> None:
    with temp_project() as root:
        first = doit(root, "nightly")  # warms the package cache
        warm = doit(root, "nightly")
        report = json.loads((root / "reports" / "nightly.json").read_text())
        print(f"nightly, {len(report)} recipes, first run: {first:6.1f} s")
        print(f"nightly, {len(report)} recipes, warm cache: {warm:6.1f} s")
        for r in report:
            print(
                f"  {r['recipe']:10s} {r['status']:9s} total {r['seconds']:5.1f} s, build "
                f"{r['build_seconds']:4.1f} s, env {r['env_bytes'] / 1e6:6.1f} MB, tarball "
                f"{r['tarball_bytes'] / 1e6:5.1f} MB, image {r['image'] or '-'}"
            )
        image = root / "build" / "state" / "ml.image.json"
        if image.exists():
            template = root / "templates" / "Dockerfile.j2"
            template.write_text(template.read_text() + "# benchmark: force a rebuild\n")
            seconds = doit(root, "docker", "env=ml")
            data = json.loads(image.read_text())
            print(
                f"image build + in-container smoke for ml: {seconds:5.1f} s; "
                f"{data['tag']} {data['size'] / 1e6:.1f} MB"
            )
        else:
            print("no Docker engine reachable: image not built")


if __name__ == "__main__":
    main()
