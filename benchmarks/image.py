"""Image of ``ml``: written without an engine vs ``docker build`` of the rendered Dockerfile.

Prints, in one run on this machine: the time to write ``dist/ml-<platform>.oci.tar`` (SBOM
included, no engine), the time of ``docker build --no-cache`` of ``docker/ml/`` (the goal is a
write in at most half of it), and the image's size in the engine beside the base's plus the
environment's (goal: at most base + 1.02 x environment). Needs ``build/base/...oci.tar``
(scripts/services.sh) and, for the comparison, a Docker engine.

    .venv/bin/python benchmarks/image.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from _project import REPO, doit, temp_project

sys.path.insert(0, str(REPO))

BASE = REPO / "build" / "base" / "bookworm-minbase.oci.tar"


def _engine() -> bool:
    r = subprocess.run(["docker", "version"], capture_output=True, check=False)
    return r.returncode == 0


def _size(tag: str) -> int:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", tag],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(out)


def main() -> None:
    from envbuild.commands.stages import load
    from envbuild.layout import read_marker
    from envbuild.ship import oci_stage
    from envbuild.util.fs import tree_bytes

    config = f'[image]\nbase = "{BASE}"\n'
    with temp_project(config) as root:
        doit(root, "pack", "env=ml")
        os.environ["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # the write alone
        doit(root, "docker", "env=ml")  # renders docker/ml/ too
        project, recipe = load(root, "ml")
        info = read_marker(project.env_prefix("ml"))
        assert info is not None
        out = root / "write.oci.tar"
        start = time.perf_counter()
        record = oci_stage.write(project, recipe, info, out)
        write_s = time.perf_counter() - start
        del os.environ["DOCKER_HOST"]
        env_bytes = tree_bytes(project.env_prefix("ml").resolve())
        print(f"image write (no engine, SBOM included): {write_s:6.1f} s  "
              f"archive {record['size'] / 1e6:.1f} MB  {record['digest']}")  # fmt: skip
        if not _engine():
            print("no Docker engine: docker build and sizes in the engine not measured")
            return
        tag = "envbuild-bench/ml:docker-build"
        start = time.perf_counter()
        r = subprocess.run(["docker", "build", "--no-cache", "--network", "none", "-q", "-t", tag,
                            str(root / "docker" / "ml")], capture_output=True, text=True,
                           env={**os.environ, "DOCKER_BUILDKIT": "0"}, check=False)  # fmt: skip
        if r.returncode != 0:
            sys.exit(f"docker build failed:\n{r.stdout}\n{r.stderr}")
        build_s = time.perf_counter() - start
        print(f"docker build --no-cache of docker/ml:   {build_s:6.1f} s  "
              f"(write / build = {write_s / build_s:.2f}; goal <= 0.5)")  # fmt: skip
        loaded = "envbuild-bench/ml:written"
        oci_stage.load(out, loaded)
        base = _size("debian:bookworm-slim")  # the same minbase root filesystem, imported
        for what, t in (("written image", loaded), ("docker build image", tag)):
            size = _size(t)
            ratio = (size - base) / env_bytes
            print(f"{what:18} in the engine: {size / 1e6:7.1f} MB = base {base / 1e6:.1f} MB"
                  f" + {ratio:.3f} x environment {env_bytes / 1e6:.1f} MB")  # fmt: skip
        subprocess.run(["docker", "rmi", tag, loaded], capture_output=True, check=False)
        print(json.dumps({"write_s": round(write_s, 1), "build_s": round(build_s, 1)}))


if __name__ == "__main__":
    main()
