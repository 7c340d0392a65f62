"""Issue 9: bytecode compiled at build time and owned by its package; packages linked from the
package cache (or copied, as a setting), with the integrity promises kept."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from envbuild.layout import read_marker
from envbuild.lock.solve import read_lockfile
from envbuild.prefix import verify
from envbuild.project import load_project
from envbuild.recipe.load import current_subdir
from envbuild.ship.pack import open_tar_stream
from envbuild.util.fs import reflink_supported

from ..conftest import Project
from ..unit.test_bytecode_links import SP


def _records(prefix: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {
        json.loads(m.read_text())["name"]: json.loads(m.read_text())
        for m in (prefix / "conda-meta").glob("*.json")
    }


def _findings(project: Project, prefix: Path) -> list[verify.Finding]:
    lock = read_lockfile(project.root / "locks" / "tiny.conda-lock.yml")
    info = read_marker(prefix)
    return verify.verify_prefix(prefix, lock, current_subdir(), info.prefix if info else "")


def _skip_if_reflinks(project: Project) -> None:
    """These tests follow files shared by hard link; where the filesystem clones (reflink,
    e.g. btrfs, XFS, APFS) builds share no inode and an edit stays in its own build."""
    p = load_project(project.root)
    if reflink_supported(p.path("package_cache"), project.root / "envs"):
        pytest.skip("this filesystem reflinks: builds do not share inodes")


def _rebuild(project: Project) -> subprocess.CompletedProcess[str]:
    """Build the same lock again as a new build (the current one becomes the rollback)."""
    (project.root / "envs" / "tiny").unlink()
    return project.doit("build")


def test_every_module_has_owned_bytecode_that_imports_use(project: Project) -> None:
    project.doit("build")
    prefix = (project.root / "envs" / "tiny").resolve()
    records = _records(prefix)
    for name in ("python", "python-dateutil"):
        paths = records[name]["paths_data"]["paths"]
        sources = [p["_path"] for p in paths if p["_path"].endswith(".py")]
        # python ships its bytecode (as conda-forge's does; the files the installer rewrites
        # are compiled here); a noarch package's is all compiled here
        pycs = {p["_path"] for p in paths if p["_path"].endswith(".pyc")}
        kinds = [p["path_type"] for p in paths if p["_path"] in pycs]
        if name == "python":
            assert kinds.count("hardlink") > 0.9 * len(kinds), kinds
        else:
            assert set(kinds) == {"pyc_file"}, kinds
        assert len(pycs) >= 0.95 * len(sources) > 0, name
        assert all(p in records[name]["files"] for p in pycs)
    assert f"{SP}/dateutil/__pycache__/parser.cpython-311.pyc" not in pycs  # a package dir
    assert f"{SP}/dateutil/parser/__pycache__/_parser.cpython-311.pyc" in pycs
    out = subprocess.run(
        [str(prefix / "bin" / "python"), "-I", "-B", "-v", "-c", "import dateutil.parser"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert f"code object from '{prefix}/{SP}/dateutil/parser/__pycache__/_parser" in out.stderr
    assert "# wrote" not in out.stderr  # nothing compiled at import time
    assert _findings(project, prefix) == []


def test_pack_carries_the_bytecode(project: Project) -> None:
    project.doit("pack")
    tarball = next((project.root / "dist").glob("tiny-*.tar.zst"))
    with open_tar_stream(tarball) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        order = [m.name for m in tar]
    names = set(order)
    assert f"{SP}/dateutil/parser/__pycache__/_parser.cpython-311.pyc" in names  # noarch
    # conda-pack itself keeps only noarch packages' bytecode: python's own must be there too
    assert "lib/python3.11/json/__pycache__/decoder.cpython-311.pyc" in names
    # ordered by kind for compression: every .py, every .pyc, every .so is one run of members
    # (conda-pack appends its own scripts after them: bin/conda-unpack, its .py, activate)
    ours = [n for n in order if not n.startswith("bin/")]
    for kind in (r"\.py$", r"\.pyc$", r"\.so(\.[0-9.]+)?$"):  # shared libraries, versioned too
        at = [i for i, n in enumerate(ours) if re.search(kind, n)]
        assert at == list(range(at[0], at[0] + len(at))), kind


def test_rebuild_links_bytecode_and_packages_instead_of_compiling(project: Project) -> None:
    _skip_if_reflinks(project)
    project.doit("build")
    first = (project.root / "envs" / "tiny").resolve()
    proc = _rebuild(project)
    second = (project.root / "envs" / "tiny").resolve()
    assert second != first
    assert "0 compiled" in proc.stderr and "packages linked" in proc.stderr
    for rel in (f"{SP}/dateutil/parser/__pycache__/_parser.cpython-311.pyc",
                f"{SP}/dateutil/parser/_parser.py"):  # fmt: skip
        assert (first / rel).stat().st_ino == (second / rel).stat().st_ino, rel


def test_copy_mode_shares_no_file(project: Project) -> None:
    toml = project.root / "envbuild.toml"
    toml.write_text(toml.read_text() + '[builds]\nlink = "copy"\n')
    project.doit("build")
    first = (project.root / "envs" / "tiny").resolve()
    _rebuild(project)
    second = (project.root / "envs" / "tiny").resolve()
    for rel in (f"{SP}/dateutil/parser/__pycache__/_parser.cpython-311.pyc",
                f"{SP}/dateutil/parser/_parser.py"):  # fmt: skip
        assert (first / rel).stat().st_ino != (second / rel).stat().st_ino, rel
        assert (second / rel).stat().st_nlink == 1


def test_file_edited_in_place_is_found_everywhere_and_next_build_is_clean(
    project: Project,
) -> None:
    _skip_if_reflinks(project)
    project.doit("build")
    old = (project.root / "envs" / "tiny").resolve()
    _rebuild(project)
    current = (project.root / "envs" / "tiny").resolve()
    rel = f"{SP}/dateutil/relativedelta.py"
    pyc = f"{SP}/dateutil/__pycache__/relativedelta.cpython-311.pyc"
    for target in (rel, pyc):
        with (current / target).open("r+b") as f:  # in place: every hard link sees it
            f.seek(0)
            f.write(b"#")
    proc = project.doit("verify", check=False)
    assert proc.returncode != 0
    report = json.loads((project.root / "reports" / "tiny.verify.json").read_text())
    found = {(f["kind"], f["path"]) for f in report["findings"]}
    assert found == {("modified-file", rel), ("modified-file", pyc)}
    shared = {(f.kind, f.path) for f in _findings(project, old)}  # the rollback build too
    assert shared == found
    # the next build re-extracts the package and recompiles, never links the edited files
    proc = project.doit("build")
    fresh = (project.root / "envs" / "tiny").resolve()
    assert fresh not in (old, current)
    assert "1 compiled" in proc.stderr
    assert (fresh / rel).stat().st_ino != (current / rel).stat().st_ino
    assert (fresh / pyc).stat().st_ino != (current / pyc).stat().st_ino
    project.doit("verify")
