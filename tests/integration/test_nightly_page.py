"""The nightly page in a real browser (issue 32): headless Chromium loads reports/index.html
from ``file://``; nothing on the console, every environment shown, a failure marked, and
``<script>`` planted in a recipe name and a failure message shown as text, never run. (The page
of a real nightly is loaded by tests/integration/test_nightly.py.)"""

from __future__ import annotations

import re
from pathlib import Path

from envbuild.ops import nightly_page
from envbuild.ops.nightly import NightlyResult
from envbuild.project import load_project

from ..support import browser

PLANT = '<script>document.title="pwned";console.error("ran")</script>'


def _results() -> list[NightlyResult]:
    change = {"platform": "linux-64", "manager": "conda", "name": f"numpy{PLANT}",
              "kind": "upgraded", "old": "1.26.4 py311", "new": "2.0.1 py311"}  # fmt: skip
    return [
        NightlyResult(recipe="base", status="unchanged", seconds=2.0),
        NightlyResult(
            recipe="ml",
            status="promoted",
            changes=[change],
            env_bytes=310_000_000,
            tarball_bytes=95_000_000,
            seconds=240.0,
        ),
        NightlyResult(
            recipe=f"x{PLANT}",
            status="failed",
            stage="smoke",
            error=f"import torch: exit 1: {PLANT}",
            seconds=30.0,
        ),
    ]


def _page(root: Path, template: str = "") -> Path:
    root.mkdir()
    (root / "envbuild.toml").write_text("")
    if template:
        (root / "templates" / "nightly").mkdir(parents=True)
        (root / "templates" / "nightly" / "index.html.j2").write_text(template)
    project = load_project(root)
    nightly_page.write_page(project, _results(), now=1_000_000.0)
    return nightly_page.write_page(project, _results(), now=1_086_400.0)


def check_page(page: Path, home: Path, recipes: list[str], failed: str, shot: Path) -> str:
    """Load ``page`` in Chromium: no console line, the title it was written with (no script
    changed it), a row per recipe, ``failed``'s row and its reason marked. Returns the DOM."""
    loaded = browser.load(page, home, screenshot=shot)
    assert loaded.console == ()
    assert re.search(r"<title>envbuild nightly — [0-9: -]+ UTC</title>", loaded.dom)
    assert "<script" not in loaded.dom.lower()
    shown = re.findall(r'<tr class="env (ok|failed)" data-recipe="([^"]*)"', loaded.dom)
    assert [name for _, name in shown] == recipes
    assert [name for kind, name in shown if kind == "failed"] == [failed]
    assert re.search(r'<span class="badge s-failed">FAILED at \w+</span>', loaded.dom)
    assert loaded.dom.count('<tr class="error-row"') == 1
    return loaded.dom


def test_chromium_shows_every_environment_and_runs_nothing_planted(tmp_path: Path) -> None:
    page = _page(tmp_path / "p")
    failed = "x&lt;script&gt;document.title=&quot;pwned&quot;;console.error(&quot;ran&quot;)&lt;/script&gt;"
    dom = check_page(page, tmp_path, ["base", "ml", failed], failed, tmp_path / "page.png")
    assert dom.count("&lt;script&gt;document.title") >= 4  # name, change, error, error row
    assert dom.count("<svg ") == 9  # three charts for each environment


def test_a_script_let_through_is_blocked_and_seen(tmp_path: Path) -> None:
    # a project's own template that wrongly marks a message safe: the page's policy still
    # runs nothing, and the console says so (the check above can fail)
    own = (
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'\"><title>t</title></head>"
        "<body>{{ rows[2].error | safe }}</body></html>"
    )
    loaded = browser.load(_page(tmp_path / "p", own), tmp_path)
    assert "<title>t</title>" in loaded.dom and "pwned" not in loaded.dom.split("<body>")[0]
    assert len(loaded.console) == 1 and "Content Security Policy" in loaded.console[0]
