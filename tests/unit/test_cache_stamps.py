"""Package cache stamps: when a warm build may skip re-hashing a cache entry (the end-to-end
case, an environment file edited in place, is in test_bytecode_links.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from envbuild.rattler import cache_stamps


def _entry(cache: Path) -> Path:
    entry = cache_stamps.entry_dir(cache, "pkg-1.0-h0_0.conda")
    (entry / "info").mkdir(parents=True)
    (entry / "lib").mkdir()
    (entry / "lib" / "a.py").write_text("a = 1\n")
    (entry / "lib" / "b.so").write_bytes(b"\0" * 64)
    paths = [{"_path": "lib/a.py"}, {"_path": "lib/b.so"}]
    (entry / "info" / "paths.json").write_text(json.dumps({"paths": paths}))
    return entry


def test_entry_dir_follows_py_rattlers_layout(tmp_path: Path) -> None:
    assert cache_stamps.entry_dir(tmp_path, "numpy-2.0-py311_0.conda").name == "numpy-2.0-py311_0"
    assert cache_stamps.entry_dir(tmp_path, "zlib-1.3-h0_1.tar.bz2").name == "zlib-1.3-h0_1"


def test_stamp_holds_until_any_file_changes(tmp_path: Path) -> None:
    entry = _entry(tmp_path)
    assert not cache_stamps.intact(entry)  # never stamped: validate in full
    cache_stamps.stamp(entry)
    assert cache_stamps.intact(entry)
    target = entry / "lib" / "a.py"
    with target.open("r+b") as f:  # same size, in place (as through a hard link)
        f.write(b"b")
    assert not cache_stamps.intact(entry)
    cache_stamps.stamp(entry)  # validated (re-extracted) again
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert not cache_stamps.intact(entry)


def test_missing_file_or_unreadable_stamp_is_not_intact(tmp_path: Path) -> None:
    entry = _entry(tmp_path)
    cache_stamps.stamp(entry)
    (entry / cache_stamps.STAMP).write_text("{not json")
    assert not cache_stamps.intact(entry)
    cache_stamps.stamp(entry)
    (entry / "lib" / "b.so").unlink()
    assert not cache_stamps.intact(entry)
    cache_stamps.stamp(entry)  # a file paths.json lists is gone: nothing to stamp
    assert not cache_stamps.intact(entry)
