"""Package cache stamps: when a warm build may skip re-hashing a cache entry (the end-to-end
case, an environment file edited in place, is in test_bytecode_links.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..conftest import Project


def test_an_entry_is_used_only_if_extracted_from_the_locked_archive(
    make_project: Callable[..., Project], channel: Path, tmp_path: Path
) -> None:
    """py-rattler keys its cache by file name and records the sha256 it was asked for before
    it fetches. A channel that rebuilt a package under the same file name, with a fetch of it
    that failed once, left the old bytes in an entry py-rattler took for the new archive; the
    entry is now used only if envbuild stamped it as extracted from the locked archive."""
    import shutil
    import subprocess

    from ..support.fakechannel import index, make_module_package

    own = tmp_path / "own-channel"
    shutil.copytree(channel, own)
    make_module_package(own, "greeting", "1.0", "MESSAGE = 'A'\n")
    index(own)
    p = make_project(mirror=str(own), recipes={"g": "dependencies: ['python 3.11.*', greeting]\n"})
    (p.root / "envbuild.toml").write_text(  # its own package cache
        f'[mirrors]\nconda-forge = "{own}"\n[paths]\npackage_cache = "{tmp_path / "pkgs"}"\n'
    )
    p.doit("build", "env=g")
    archive = next(own.glob("noarch/greeting-1.0-*.conda"))
    make_module_package(own, "greeting", "1.0", "MESSAGE = 'B'\n")  # same file name
    index(own)
    p.doit("lock", "env=g", "update=greeting")
    moved = archive.with_name("away.conda")
    archive.rename(moved)
    assert p.doit("build", "env=g", check=False).returncode != 0  # the fetch fails
    moved.rename(archive)
    p.doit("build", "env=g")
    py = p.root / "envs" / "g" / "bin" / "python"
    out = subprocess.run([str(py), "-I", "-c", "import greeting; print(greeting.MESSAGE)"],
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert out.stdout.strip() == "B"
