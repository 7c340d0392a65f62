"""Issue 20: the five published artifacts (environment, lockfile, explicit files, tarball,
image tag) under races with real processes, kill -9 in the windows nobody named, a shared
Docker engine and a full disk. After each, the five describe one build and nothing
(candidate, temporary, image) is left behind."""

from __future__ import annotations

import os
from pathlib import Path

from envbuild.util.fs import atomic_link


def test_atomic_link_onto_the_same_file_leaves_nothing(tmp_path: Path) -> None:
    src, dest = tmp_path / "kept.tar.zst", tmp_path / "dist" / "env.tar.zst"
    src.write_bytes(b"tarball")
    atomic_link(src, dest)
    atomic_link(src, dest)  # a switch finished by recovery, a plain rollback: same inode
    assert os.path.samefile(src, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["env.tar.zst"]
