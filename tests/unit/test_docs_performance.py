"""The performance page's tables and charts come from one data file and cannot disagree.

The site is built in-process as tests/unit/test_docs_site.py does (a copy of ``mkdocs.yml`` and
``docs/``, mkdocs' own strict build), so the hook ``docs/gen_performance.py`` runs as
``mkdocs build --strict`` runs it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from mkdocs.exceptions import Abort

from tests.unit.test_docs_site import REPO, _build, _site

DATA = REPO / "docs" / "explanation" / "performance.json"
_FIGURE = re.compile(r"<figure class=\"benchmark\">(.*?)</figure>\s*<table>(.*?)</table>", re.S)


def _attrs(tag: str) -> dict[str, str]:
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


def test_each_table_has_its_chart_and_both_show_the_data_files_figures(tmp_path: Path) -> None:
    root = _site(tmp_path)
    _build(root)
    html = (root / "site" / "explanation" / "performance" / "index.html").read_text()
    page = html.split("<article", 1)[1].split("</article>", 1)[0]  # the theme's icons are SVG too
    tables = json.loads(DATA.read_text())["tables"]
    found = _FIGURE.findall(page)
    assert len(found) == len(tables) == page.count("<svg") == page.count("<table>")
    assert "<script" not in page
    for (svg, html_table), (key, data) in zip(found, tables.items(), strict=True):
        assert f'id="perf-{key}-title"' in svg and "<title" in svg and 'role="img"' in svg
        bars = [_attrs(t) for t in re.findall(r"<rect class=\"bar [^>]*>", svg)]
        rows = data["rows"]
        assert [float(b["data-value"]) for b in bars] == [
            v for r in rows for v in (r["envbuild"], r["peer"])
        ]
        for r, (mine, peer) in zip(rows, zip(bars[::2], bars[1::2], strict=True), strict=True):
            assert mine["class"] == "bar envbuild" and peer["class"] == "bar peer"
            widths = float(mine["width"]), float(peer["width"])
            assert max(widths) == 470.0  # the larger bar spans the chart
            assert widths[0] / widths[1] == pytest.approx(r["envbuild"] / r["peer"], rel=2e-3)
        goals = [_attrs(t) for t in re.findall(r"<line class=\"goal\"[^>]*>", svg)]
        assert [float(g["data-goal"]) for g in goals] == [
            r["goal"] for r in rows if r["goal"] is not None
        ]
        cells = [re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", html_table, re.S)[1:]]  # fmt: skip
        assert [(c[1], c[2], c[3]) for c in cells] == [
            (f"{r['envbuild']:g} {r['unit']}", f"{r['peer']:g} {r['unit']}",
             f"{r['envbuild'] / r['peer']:.2f}x")
            for r in rows
        ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (None, "performance.json: cannot read it"),
        ("{not json", "performance.json: not JSON"),
        ("peer", "tables.conda.rows[0].peer: expected a positive number"),
        ("drop", "tables.image has no <!-- benchmark: image --> on the page"),
        ("extra", "the page asks for tables.nope"),
    ],
)
def test_a_missing_or_malformed_data_file_fails_the_strict_build_saying_what(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: str | None, message: str
) -> None:
    root = _site(tmp_path)
    data = root / "docs" / "explanation" / "performance.json"
    page = root / "docs" / "explanation" / "performance.md"
    if change is None:
        data.unlink()
    elif change == "peer":
        parsed = json.loads(data.read_text())
        parsed["tables"]["conda"]["rows"][0]["peer"] = "10 s"
        data.write_text(json.dumps(parsed))
    elif change == "drop":
        page.write_text(page.read_text().replace("<!-- benchmark: image -->", ""))
    elif change == "extra":
        page.write_text(page.read_text() + "\n<!-- benchmark: nope -->\n")
    else:
        data.write_text(change)
    with caplog.at_level(logging.ERROR, logger="mkdocs"), pytest.raises(Abort):
        _build(root)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(message in e and "fix the file" in e for e in errors), errors


def test_text_from_the_data_file_is_text_in_the_chart_and_the_table(tmp_path: Path) -> None:
    import markdown
    import yaml

    gen = _hook()
    plant = "<script>alert(1)</script>&<img src=x onerror=alert(2)>"
    parsed = json.loads(DATA.read_text())
    conda = parsed["tables"]["conda"]
    conda["title"] = conda["peer"] = plant
    conda["rows"][0]["stage"] = f"`code{plant}` {plant}"
    conda["rows"][0]["unit"] = plant
    path = tmp_path / "performance.json"
    path.write_text(json.dumps(parsed))
    md = gen.render((REPO / "docs" / "explanation" / "performance.md").read_text(), gen.load(path))
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    extensions = [e if isinstance(e, str) else next(iter(e)) for e in config["markdown_extensions"]]
    html = markdown.markdown(md, extensions=extensions)
    assert "<script" not in html and "<img" not in html
    assert html.count("&lt;script&gt;") >= 6  # title, legend, stage, units; table cells


def _hook() -> ModuleType:
    """docs/gen_performance.py, imported as a module (a mkdocs hook, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "gen_performance", REPO / "docs" / "gen_performance.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
