"""Issue 18: the same lock gives the same tarball, byte for byte: in two clones at different
paths with their own (cold) package caches, and after a rebuild with a warm one; every member
has the lock's epoch and no build path; conda still reads the packed records."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

from envbuild.lock.epoch import FALLBACK_EPOCH, lock_epoch
from envbuild.recipe.load import current_subdir
from envbuild.ship import pack

from ..conftest import REPO, Project

RECIPE = """\
name: {name}
channels: [conda-forge]
dependencies: ['python 3.11.*', python-dateutil, ipykernel]
smoke: {{imports: [dateutil]}}
"""


def _project(root: Path, channel: Path) -> Project:
    """A project at ``root`` with its own package cache (cold at first)."""
    (root / "recipes").mkdir(parents=True)
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    (root / "envbuild.toml").write_text(
        f'[mirrors]\nconda-forge = "{channel}"\n[paths]\npackage_cache = "{root / "pkgs"}"\n'
    )
    p = Project(root)
    p.write_recipe("repro", RECIPE.format(name="repro"))
    return p


def _record(p: Project) -> dict[str, object]:
    return json.loads((p.root / "build" / "state" / "repro.pack.json").read_text())


@pytest.fixture(scope="module")
def two_clones(
    tmp_path_factory: pytest.TempPathFactory, channel: Path
) -> tuple[Project, Project, str, str]:
    """One lock packed in two projects at paths of different lengths, each with its own package
    cache; then the first rebuilt (warm cache) and packed again: (a, b, first sha, rebuilt).
    The second path is long enough that the installer writes its entry points as /bin/sh
    trampolines (the shebang would pass 127 bytes)."""
    a = _project(tmp_path_factory.mktemp("a") / "p", channel)
    b = _project(tmp_path_factory.mktemp("clone-at-a-much-longer-path") / "x" / "proj", channel)
    a.doit("lock", "env=repro")
    shutil.copytree(a.root / "locks", b.root / "locks")  # the committed lock, as a clone has it
    packed = a.doit("pack", "env=repro")
    b.doit("pack", "env=repro")
    first = str(_record(a)["tarball_sha256"])
    assert f"sha256 {first}" in packed.stderr  # printed when packed
    a.doit("clean", "build:repro")
    rebuilt = a.doit("pack", "env=repro")
    assert "build:repro" in Project.executed(rebuilt)
    return a, b, first, str(_record(a)["tarball_sha256"])


def _tarball(p: Project, fmt: str = "tar.zst") -> Path:
    return p.root / "dist" / f"repro-{current_subdir()}.{fmt}"


@pytest.mark.slow
def test_two_clones_and_a_rebuild_pack_the_same_bytes(two_clones) -> None:  # type: ignore[no-untyped-def]
    a, b, first, rebuilt = two_clones
    assert _record(b)["tarball_sha256"] == first == rebuilt
    assert _record(a)["reproduced"] is True
    assert _record(a)["lock_sha256"] == _record(b)["lock_sha256"]


@pytest.mark.slow
def test_status_shows_the_tarball_sha256(two_clones) -> None:  # type: ignore[no-untyped-def]
    a, _, first, _ = two_clones
    proc = a.doit("status", "--json")
    (row,) = json.loads(proc.stdout[proc.stdout.index("[") :])
    assert row["tarball_sha256"] == first


@pytest.mark.slow
def test_gzip_too(two_clones, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b, _, _ = two_clones
    outs = []
    for p in (a, b):
        out = tmp_path / f"{len(outs)}.tar.gz"
        pack.write_tarball(
            (p.root / "envs" / "repro").resolve(), out, "tar.gz", 6, epoch=1234567890
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.slow
def test_members_carry_the_lock_epoch_and_no_build_path(two_clones) -> None:  # type: ignore[no-untyped-def]
    a, _, _, _ = two_clones
    epoch = lock_epoch(a.root / "locks" / "repro.conda-lock.yml")
    assert epoch > FALLBACK_EPOCH  # the converted wheels' own dates
    build_root = str(a.root).encode()
    names = []
    with pack.open_tar_stream(_tarball(a)) as s, tarfile.open(fileobj=s, mode="r|") as tf:
        for m in tf:
            names.append(m.name)
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (epoch, 0, 0, "", ""), m.name
            assert m.mode in (0o644, 0o755, 0o777) and not m.islnk(), m.name
            data = tf.extractfile(m).read() if m.isfile() else m.linkname.encode()  # type: ignore[union-attr]
            assert build_root not in data, m.name
    assert len(names) == len(set(names))
    assert "bin/conda-unpack" in names and any(n.endswith(".pyc") for n in names)


@pytest.mark.slow
def test_packed_records_drop_install_specific_fields(two_clones, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, _, _, _ = two_clones
    dest = tmp_path / "unpacked"
    pack.extract(_tarball(a), dest)
    history = (dest / "conda-meta" / "history").read_text()
    assert "==> 20" in history and history.count("==>") >= 1
    for meta in (dest / "conda-meta").glob("*.json"):
        record = json.loads(meta.read_text())
        assert record.get("extracted_package_dir", "") == ""
        assert (record.get("link") or {}).get("source", "") == ""
        for e in record["paths_data"]["paths"]:
            if e.get("prefix_placeholder") or e["path_type"] == "softlink":
                assert "sha256_in_prefix" not in e
    # bin/conda_unpack_progress.py (conda-pack's) is readable by every user
    assert os.stat(dest / "bin" / "conda_unpack_progress.py").st_mode & 0o044 == 0o044


def _conda_peer(tmp_path: Path) -> Path | None:
    """A real conda (../shared/tools/conda-peer), installed into ``tmp_path``; None without."""
    for base in (REPO.parent / "shared", Path("/work/shared")):
        script = base / "tools" / "conda-peer" / "install.sh"
        if script.exists():
            dest = tmp_path / "conda-peer"
            subprocess.run(["bash", script, dest], check=True, capture_output=True, timeout=900)
            return dest / "bin" / "conda"
    return None


@pytest.mark.slow
def test_conda_reads_the_packed_records(two_clones, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, _, _, _ = two_clones
    conda = _conda_peer(tmp_path)
    if conda is None:
        pytest.skip("no ../shared/tools/conda-peer here")
    dest = tmp_path / "unpacked"
    pack.extract(_tarball(a), dest)
    subprocess.run([dest / "bin" / "python", dest / "bin" / "conda-unpack"], check=True)
    (tmp_path / "home").mkdir()
    (tmp_path / "condarc").write_text(
        textwrap.dedent(f"""\
        offline: true
        solver: classic
        pkgs_dirs: [{tmp_path / "pkgs"}]
        envs_dirs: [{tmp_path / "envs"}]
        """)
    )
    env = {**os.environ, "HOME": str(tmp_path / "home"), "CONDARC": str(tmp_path / "condarc")}
    listed = subprocess.run(
        [conda, "list", "-p", dest, "--json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0, listed.stderr
    names = {p["name"] for p in json.loads(listed.stdout)}
    assert {"python", "python-dateutil", "ipykernel"} <= names
    history = subprocess.run(
        [conda, "env", "export", "-p", dest, "--from-history", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert history.returncode == 0, history.stderr
    assert "python-dateutil" in history.stdout
