"""Issue 18: the same lock gives the same tarball, byte for byte: in two clones at different
paths with their own (cold) package caches, and after a rebuild with a warm one; every member
has the lock's epoch and no build path; conda still reads the packed records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from envbuild.errors import LockError
from envbuild.lock.epoch import FALLBACK_EPOCH, lock_epoch
from envbuild.ship.reproducible import reproducible_bytes


def test_lock_epoch(tmp_path: Path) -> None:
    lock = tmp_path / "x.conda-lock.yml"
    doc: dict[str, object] = {"version": 1, "metadata": {"custom_metadata": {}}, "package": []}
    lock.write_text(yaml.safe_dump(doc))
    assert lock_epoch(lock) == FALLBACK_EPOCH
    doc["metadata"] = {"custom_metadata": {"envbuild_epoch": "1700000000"}}
    lock.write_text(yaml.safe_dump(doc))
    assert lock_epoch(lock) == 1700000000
    doc["package"] = [{"name": "a", "timestamp": 1710000000123}, {"name": "b", "timestamp": 5}]
    lock.write_text(yaml.safe_dump(doc))
    assert lock_epoch(lock) == 1710000000  # ms -> s, newest wins over the recorded one
    lock.write_text("package: [")
    with pytest.raises(LockError, match=r"x.conda-lock.yml: cannot read the lockfile"):
        lock_epoch(lock)


def test_history_dates_and_records(tmp_path: Path) -> None:
    history = b"==> 2026-12-06 21:33:10 <==\n# cmd: envbuild build\n+conda-forge/noarch::six\n"
    out = reproducible_bytes("conda-meta/history", history, 946684800, str(tmp_path))
    assert out.startswith(b"==> 2000-01-01 00:00:00 <==\n# cmd: envbuild build\n")
    record = {
        "paths_data": {
            "paths": [
                {"_path": "lib/a.py", "path_type": "hardlink", "prefix_placeholder": "/ph",
                 "sha256": "1", "sha256_in_prefix": "2", "size_in_bytes": 3},
                {"_path": "lib/__pycache__/a.cpython-311.pyc", "path_type": "pyc_file", "sha256": "4"},
                {"_path": "lib/b.py", "path_type": "hardlink", "sha256": "5", "sha256_in_prefix": "5"},
            ]
        },
        "files": ["lib/a.py", "lib/__pycache__/a.cpython-311.pyc", "lib/b.py"],
    }  # fmt: skip
    packed = json.loads(
        reproducible_bytes("conda-meta/a-1-0.json", json.dumps(record).encode(), 0, "/p")
    )
    assert packed["files"] == ["lib/a.py", "lib/b.py"]  # bytecode of a prefixed source: not packed
    first, second = packed["paths_data"]["paths"]
    assert first == {
        "_path": "lib/a.py",
        "path_type": "hardlink",
        "prefix_placeholder": "/ph",
        "sha256": "1",
    }
    assert second["sha256_in_prefix"] == "5"
