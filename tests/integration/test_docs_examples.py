"""Every shell example marked runnable in the docs runs, in order, and succeeds.

The marker is an HTML comment on the line before a ```` ```bash ```` fence (CONTRIBUTING.md,
"Docs"): ``<!-- runnable -->`` runs the block in the page's working directory;
``<!-- runnable: new -->`` first moves the page to a new, empty directory (for a page that
starts with ``envbuild init``). A page's working directory is, until then, a copy of the
offline demo project (``recipes/``, ``locks/``, ``pins/``, ``envbuild.toml``, ``dodo.py``).
Blocks run with ``bash -euo pipefail`` and the envbuild under test first on ``PATH``.

The machine has no conda channel, so whenever the directory has an ``envbuild.toml`` without a
``[mirrors]`` table the test adds one pointing ``conda-forge`` at the tests' offline channel
(the ``channel`` fixture), with the shared package cache: what a reader behind a firewall does
once, as the tutorial says. A block that exits non-zero fails the test, naming the page, the
line and the output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import REPO, Project

DOCS = REPO / "docs"
MARKER = re.compile(r"^<!-- runnable(?::\s*(new))? -->\n```bash\n(.*?)^```$", re.M | re.S)
DEMO = ("recipes", "locks", "pins", "envbuild.toml", "dodo.py")


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    new: bool
    script: str


def examples(text: str, page: str) -> list[Example]:
    """The runnable blocks of a Markdown page, in order."""
    return [
        Example(page, text.count("\n", 0, m.start()) + 1, bool(m.group(1)), m.group(2))
        for m in MARKER.finditer(text)
    ]


def pages() -> dict[str, list[Example]]:
    found = {}
    for path in sorted(DOCS.rglob("*.md")):
        page = str(path.relative_to(REPO))
        blocks = examples(path.read_text(encoding="utf-8"), page)
        if blocks:
            found[page] = blocks
    return found


PAGES = pages()


def test_the_marker_is_found() -> None:
    text = "a\n<!-- runnable -->\n```bash\necho 1\n```\n\n```bash\nnot this\n```\n"
    text += "<!-- runnable: new -->\n```bash\necho 2\necho 3\n```\n"
    got = examples(text, "x.md")
    assert [(e.line, e.new, e.script) for e in got] == [
        (2, False, "echo 1\n"),
        (10, True, "echo 2\necho 3\n"),
    ]
    assert len(PAGES) >= 2  # the tutorial and the home page carry runnable examples


def _mirror(directory: Path, channel: Path, package_cache: Path) -> None:
    """Point ``conda-forge`` at ``channel`` in ``directory/envbuild.toml``, if it has none."""
    config = directory / "envbuild.toml"
    if not config.is_file():
        return
    text = config.read_text()
    text = re.sub(
        r'(?m)^conda-forge = "build/offline-channel"$', f'conda-forge = "{channel}"', text
    )
    if not re.search(r"(?m)^\[mirrors\]", text):
        text += f'\n[mirrors]\nconda-forge = "{channel}"\n'
    if not re.search(r"(?m)^\[paths\]", text):
        text += f'\n[paths]\npackage_cache = "{package_cache}"\n'
    config.write_text(text)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_runnable_examples(page: str, tmp_path: Path, channel: Path, package_cache: Path) -> None:
    cwd = tmp_path / "demo"
    cwd.mkdir()
    for name in DEMO:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, cwd / name)
        else:
            shutil.copy(source, cwd / name)
    env = Project.env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter")
    env["ENVBUILD_QUIET"] = "1"
    for n, example in enumerate(PAGES[page]):
        if example.new:
            cwd = tmp_path / f"new-{n}"
            cwd.mkdir()
        _mirror(cwd, channel, package_cache)
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", example.script],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"{page}:{example.line}: the runnable example exited {proc.returncode}\n"
                f"{example.script}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
