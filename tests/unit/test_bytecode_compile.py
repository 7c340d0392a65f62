"""Issue 21: bytecode compiled in parallel, while the installer runs, and only where the
package ships none; the same bytes as one ``compileall`` in the prefix; failures, retries and
two builds sharing one bytecode cache leave nothing half made."""

from __future__ import annotations

import json
from pathlib import Path

from envbuild.install import pyc_cache


def test_cache_entry_naming_paths_outside_is_never_linked(tmp_path: Path) -> None:
    entry = tmp_path / "cache" / "k"
    (entry / "__pycache__").mkdir(parents=True)
    for rel in ("__pycache__/m.cpython-311.pyc", "../outside.pyc"):
        (entry / rel).write_bytes(b"x")
        st = (entry / rel).stat()
        manifest = {rel: ["0" * 64, st.st_size, st.st_mtime_ns]}
        (entry / pyc_cache.MANIFEST).write_text(json.dumps(manifest))
        linked = pyc_cache.link_entry(tmp_path / "cache", "k", tmp_path / "prefix", True)
        assert (linked is None) == rel.startswith("..")
    assert not (tmp_path / "outside.pyc").exists()  # prefix/../outside.pyc
