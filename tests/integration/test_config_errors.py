"""Issue 18: envbuild.toml errors, read while doit loads the tasks, are one line naming the file,
line and key (with a did-you-mean where one fits) and a non-zero exit from every command; a recipe
that does not parse shows as invalid in `status`, with its message."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO, Project

BAD = [
    (
        "[pubish]\nx = 1\n",
        r"envbuild.toml: line 1: pubish: unknown key \(did you mean 'publish'\?\); known keys: ",
    ),
    ("[zzz]\nx = 1\n", r"envbuild.toml: line 1: zzz: unknown key; known keys: mirrors, paths, "),
    (
        "[lock]\nplatfroms = ['linux-64']\n",
        r"line 2: lock.platfroms: unknown key \(did you mean 'platforms'\?\)",
    ),
    ("[mirrors]\nconda-forge = \n", r"envbuild.toml: line 2: invalid TOML: "),
    ("[offline]\npin = 'x'\n", r"line 2: offline.pin: unknown key \(did you mean 'pins'\?\)"),
    ("[builds]\nkeep = 1\n", r"line 2: builds.keep: expected an integer from 2 to 100, got 1"),
]


def _project(tmp_path: Path, toml: str) -> Project:
    root = tmp_path / "proj"
    (root / "recipes").mkdir(parents=True)
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    (root / "envbuild.toml").write_text(toml)
    return Project(root)


def _envbuild(p: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from envbuild.cli import main; raise SystemExit(main())", *args],
        cwd=p.root, env=p.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(("toml", "message"), BAD)
def test_config_errors_are_one_line_from_every_command(
    tmp_path: Path, toml: str, message: str
) -> None:
    p = _project(tmp_path, toml)
    runs = [p.doit("list", check=False), p.doit("build", check=False)]
    runs += [_envbuild(p, "status"), _envbuild(p, "lock")]
    for proc in runs:
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert re.search(message, lines[0]), lines[0]


def test_status_shows_a_recipe_that_does_not_parse(tmp_path: Path) -> None:
    p = _project(tmp_path, "")
    p.write_recipe("broken", "name: broken\ndependencies: [python\n")
    proc = p.doit("status")
    assert "invalid" in proc.stdout and "invalid recipe: " in proc.stdout
    assert "broken.yml" in proc.stdout
    out = p.doit("status", "--json").stdout
    (row,) = json.loads(out[out.index("[") :])
    assert row["lock"] == "invalid" and "broken.yml" in row["recipe_error"]


def test_status_shows_an_invalid_recipe_that_has_a_lock(tmp_path: Path) -> None:
    """The YAML parses, the recipe does not (a key), and a lockfile exists: the freshness
    check would load the recipe; status still lists every recipe, this one invalid."""
    p = _project(tmp_path, "")
    p.write_recipe("typo", "name: typo\ndependencies: [python]\nsmok: {imports: [json]}\n")
    (p.root / "locks").mkdir(exist_ok=True)
    (p.root / "locks" / "typo.conda-lock.yml").write_text("version: 1\npackage: []\n")
    p.write_recipe("other")
    out = p.doit("status", "--json").stdout
    rows = {r["recipe"]: r for r in json.loads(out[out.index("[") :])}
    assert rows["typo"]["lock"] == "invalid" and "smok" in rows["typo"]["recipe_error"]
    assert "other" in rows
