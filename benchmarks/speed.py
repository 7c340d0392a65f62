"""Issue 9's figures for recipes/ml.yml, each beside its floor or peer measured in this run.

    python benchmarks/speed.py

Prints one line per figure: envbuild's time (or bytes), the floor's, and the ratio (times are
medians of 3 where a step can be repeated). Runs in a temporary copy of the project (see
_project.py, with the default ``[builds] keep = 3``: each measured rebuild also retires the
oldest build, as every rebuild does once three exist) against the offline channel.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _project import doit, temp_project

from envbuild.ship.pack import write_tarball


def timed(argv: list[str], **kw: object) -> float:
    start = time.perf_counter()
    out = subprocess.DEVNULL
    subprocess.run(argv, check=True, stdout=out, stderr=out, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def disk_bytes(*paths: Path) -> int:
    """Bytes on disk of the files under ``paths``, each inode once (hard links share)."""
    seen: set[int] = set()
    total = 0
    for root in paths:
        for f in root.rglob("*"):
            st = f.lstat()
            if f.is_file() and not f.is_symlink() and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


def apparent_bytes(root: Path) -> int:
    """Sum of the sizes of the regular files under ``root``, each inode once (what a tar or
    an image layer of the tree holds)."""
    seen: set[int] = set()
    total = 0
    for f in root.rglob("*"):
        st = f.lstat()
        if f.is_file() and not f.is_symlink() and st.st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_size
    return total


def row(figure: str, ours: float, floor: float, unit: str = "s", target: str = "") -> None:
    fmt = (lambda v: f"{v:8.2f} s") if unit == "s" else (lambda v: f"{v / 1e6:8.1f} MB")
    print(f"{figure:52s} {fmt(ours)}  vs {fmt(floor)}  = {ours / floor:5.2f}x  {target}")


BARE_SOLVE = """
import asyncio, os, sys, time, rattler
async def main():
    ch = rattler.Channel(sys.argv[1])
    t = time.perf_counter()
    await rattler.solve([ch], sys.argv[2:], platforms=["linux-64", "noarch"],
        virtual_packages=[rattler.GenericVirtualPackage(rattler.PackageName(n),
        rattler.Version(v), rattler.BuildString("0")) for n, v in
        (("__unix", "0"), ("__linux", "5.10"), ("__glibc", "2.28"))])
asyncio.run(main())
sys.stdout.flush(); os._exit(0)
"""


def main() -> None:
    with temp_project() as root:
        channel = (Path(__file__).resolve().parent.parent / "build" / "offline-channel").as_uri()
        specs = [ln.strip()[2:] for ln in (root / "recipes" / "ml.yml").read_text().splitlines()
                 if ln.startswith("  - ") and "dependencies" not in ln]  # fmt: skip
        locks = []
        for _ in range(3):  # each a fresh solve: the lockfile and its explicit file removed
            for f in (root / "locks").glob("ml*"):
                f.unlink()
            locks.append(doit(root, "lock:ml"))
        bare = statistics.median(
            timed([sys.executable, "-c", BARE_SOLVE, channel, *specs]) for _ in range(3)
        )
        row("fresh `doit lock:ml` / bare py-rattler solve", statistics.median(locks), bare,
            target="(<= 4)")  # fmt: skip

        doit(root, "build:ml")  # compiles bytecode, warms the caches
        rebuilds = []
        for _ in range(5):  # keep = 3: the last three measured each also retire the oldest
            (root / "envs" / "ml").unlink()
            rebuilds.append(doit(root, "build:ml"))
        rebuilds = rebuilds[2:]
        prefix = (root / "envs" / "ml").resolve()
        noop = statistics.median(doit(root, "build:ml") for _ in range(3))
        cps = []
        for _ in range(3):
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                cps.append(timed(["cp", "-al", str(prefix), str(Path(tmp) / "copy")]))
        cp = statistics.median(cps)
        row("warm rebuild of ml / (no-op doit + cp -al)", statistics.median(rebuilds), noop + cp,
            target="(<= 3)")  # fmt: skip
        builds = sorted(d for d in (root / "envs" / ".builds" / "ml").iterdir() if d.is_dir())
        builds = builds[-3:]
        one = disk_bytes(builds[-1])
        row("disk of 3 kept builds / one build", disk_bytes(*builds), one, "B", "(<= 1.2)")

        py = str((root / "envs" / "ml" / "bin" / "python").resolve())
        host = statistics.median(
            timed([py, "-I", "-B", "-c", "import sklearn, pandas"]) for _ in range(3)
        )
        smoke = doit(root, "smoke:ml")
        recipe_cmds = json.loads((root / "build" / "state" / "ml.smoke.json").read_text())
        commands = [c["target"] for c in recipe_cmds["checks"] if c["kind"] == "command"]
        env = dict(os.environ, PATH=f"{Path(py).parent}:/usr/bin:/bin")
        floor = timed([py, "-I", "-c", "import numpy, pandas, sklearn"]) + sum(
            timed(["/bin/sh", "-c", c], env=env) for c in commands
        )
        row("smoke of ml / one import + its commands", smoke, floor, target="(<= 1.5)")

        pack = doit(root, "pack:ml")
        tarball = next((root / "dist").glob("ml-*.tar.zst"))
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            gz = Path(tmp) / "ml.tar.gz"
            current = str((root / "envs" / "ml").resolve())
            conda_pack = str(Path(sys.executable).with_name("conda-pack"))
            peer = timed([conda_pack, "-p", current, "-o", str(gz), "-q"])
            row("pack + proof of ml / conda-pack default gzip", pack, peer, target="(<= 1.0)")
            size = tarball.stat().st_size
            row("tarball size / conda-pack gzip", size, gz.stat().st_size, "B", "(<= 1.0)")
            # conda-pack leaves out the bytecode of packages that are not noarch (it packs a
            # package's files from its own paths.json): the same gzip over the same files
            same = Path(tmp) / "same-files.tar.gz"
            write_tarball(Path(current), same, "tar.gz", 4)
            row("tarball size / gzip -4 of the same files", size, same.stat().st_size, "B")

        state = root / "build" / "state" / "ml.image.json"
        if shutil.which("docker") and _engine() and doit(root, "docker:ml") and state.exists():
            tag = json.loads(state.read_text())["tag"]
            run = ["docker", "run", "--rm", "--network", "none", tag]
            cold = statistics.median(
                timed([*run, "python", "-I", "-c", "import sklearn, pandas"]) for _ in range(3)
            )
            start = timed([*run, "true"])
            figure = "import sklearn, pandas: image (non-root) / host"
            row(figure, cold - start, host, "s", "(<= 1.3)")
            print("  (image: median of 3 cold `docker run`, minus a `docker run ... true`)")
            recipe = yaml.safe_load((root / "recipes" / "ml.yml").read_text())
            image = _image_bytes(tag)
            base_image = _image_bytes(recipe["docker"]["base_image"])
            env_bytes = apparent_bytes(Path(current))
            row("image size - base image / environment size", image - base_image, env_bytes,
                "B", "(<= 1.05)")  # fmt: skip
        else:
            print("no Docker engine: image figure skipped")


def _image_bytes(ref: str) -> int:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", ref],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out.strip())


def _engine() -> bool:
    return subprocess.run(["docker", "version"], capture_output=True).returncode == 0


if __name__ == "__main__":
    main()
