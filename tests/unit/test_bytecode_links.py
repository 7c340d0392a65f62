"""Issue 9: bytecode compiled at build time and owned by its package; packages linked from the
package cache (or copied, as a setting), with the integrity promises kept."""

from __future__ import annotations

import json
from pathlib import Path

from envbuild.install import bytecode

SP = "lib/python3.11/site-packages"


def test_changed_package_or_interpreter_never_reuses_bytecode(tmp_path: Path) -> None:
    def prefix(name: str, python_sha: str, pkg_sha: str) -> Path:
        meta = tmp_path / name / "conda-meta"
        meta.mkdir(parents=True)
        py = {"name": "python", "version": "3.11.7", "build": "h_0", "sha256": python_sha,
              "paths_data": {"paths": []}}  # fmt: skip
        pkg = {"name": "pkg", "version": "1", "build": "0", "sha256": pkg_sha,
               "paths_data": {"paths": [{"_path": f"{SP}/pkg.py", "path_type": "hardlink"}]}}  # fmt: skip
        (meta / "python-3.11.7-h_0.json").write_text(json.dumps(py))
        (meta / "pkg-1-0.json").write_text(json.dumps(pkg))
        return tmp_path / name

    keys = {
        n: bytecode.plan(prefix(n, *shas))[0].key
        for n, shas in {"a": ("1", "x"), "b": ("1", "x"), "c": ("2", "x"), "d": ("1", "y")}.items()
    }
    assert keys["a"] == keys["b"]
    assert len({keys["a"], keys["c"], keys["d"]}) == 3
    assert bytecode.plan(prefix("e", "1", "x"))[0].pycs == (
        f"{SP}/__pycache__/pkg.cpython-311.pyc",
    )
