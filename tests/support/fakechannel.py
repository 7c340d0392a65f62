"""Channels of packages that are only ever solved, never installed here: real .conda archives
with real index.json/paths.json and a placeholder payload, indexed by py-rattler."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from conda_package_handling import api as cph

from envbuild.rattler import client as rattler_client

PLATFORMS = ("linux-64", "linux-aarch64", "osx-64", "osx-arm64", "win-64")


def write_package(
    channel: Path,
    subdir: str,
    index: dict[str, object],
    files: dict[str, bytes],
    extra_info: dict[str, object] | None = None,
) -> Path:
    """Write ``<channel>/<subdir>/<name>-<version>-<build>.conda`` with ``files``."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        info = {
            "index.json": index,
            **(extra_info or {}),
            "paths.json": {
                "paths": [
                    {
                        "_path": rel,
                        "path_type": "hardlink",
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "size_in_bytes": len(data),
                    }
                    for rel, data in files.items()
                ],
                "paths_version": 1,
            },
        }
        (root / "info").mkdir()
        for fn, content in info.items():
            (root / "info" / fn).write_text(json.dumps(content))
        (root / "info" / "files").write_text("".join(f"{rel}\n" for rel in files))
        out_dir = channel / subdir
        out_dir.mkdir(parents=True, exist_ok=True)
        fn = f"{index['name']}-{index['version']}-{index['build']}.conda"
        members = [*files, *(f"info/{n}" for n in info), "info/files"]
        cph.create(str(root), members, fn, out_folder=str(out_dir))
    return out_dir / fn


def make_package(
    channel: Path,
    subdir: str,
    name: str,
    version: str,
    *,
    build: str = "0",
    depends: Iterable[str] = (),
    noarch: str | None = None,
) -> Path:
    """A package with a placeholder payload, for solving only."""
    index: dict[str, object] = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "depends": list(depends),
        "subdir": subdir,
        "timestamp": 1700000000000,
    }
    if noarch:
        index["noarch"] = noarch
    payload = {f"share/fake/{name}-{version}.txt": f"{name} {version} placeholder\n".encode()}
    return write_package(channel, subdir, index, payload)


def index(channel: Path) -> Path:
    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    for stale in channel.glob("*/repodata.json"):
        os.unlink(stale)
    rattler_client.call("index", {"channel_dir": str(channel)})
    return channel


def multi_platform_channel(channel: Path) -> Path:
    """python 3.11.7 for five platforms, and small graphs for conflict explanations."""
    for plat in PLATFORMS:
        make_package(channel, plat, "python", "3.11.7", build="h0_cpython")
    g = "noarch"
    make_package(channel, g, "alpha", "1.0", noarch="generic")
    make_package(channel, g, "beta", "1.0", depends=["alpha >=1"], noarch="generic")
    for v in ("1.19.5", "1.23.0"):
        make_package(channel, g, "numbers", v, noarch="generic")
    make_package(channel, g, "frame", "2.0.1", depends=["numbers >=1.22.4"], noarch="generic")
    make_package(channel, "linux-64", "gpukernel", "1.0", depends=["__cuda >=12"])
    make_package(channel, "win-64", "gpukernel", "1.0", depends=["__cuda >=12"])
    make_package(channel, "linux-64", "linuxonly", "1.0")
    return index(channel)


def add_newer_versions(channel: Path) -> Path:
    """alpha 2.0 and beta 1.1 (which needs alpha >=2) appear upstream."""
    make_package(channel, "noarch", "alpha", "2.0", noarch="generic")
    make_package(channel, "noarch", "beta", "1.1", depends=["alpha >=2"], noarch="generic")
    return index(channel)


def make_module_package(channel: Path, name: str, version: str, source: str) -> Path:
    """A real noarch: python package holding one module ``<name>.py`` with ``source``."""
    index = {
        "name": name,
        "version": version,
        "build": "py_0",
        "build_number": 0,
        "depends": ["python"],
        "subdir": "noarch",
        "noarch": "python",
        "timestamp": 1700000000000,
    }
    link = {"link.json": {"noarch": {"type": "python"}, "package_metadata_version": 1}}
    return write_package(
        channel, "noarch", index, {f"site-packages/{name}.py": source.encode()}, link
    )
