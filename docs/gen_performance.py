"""The performance page's tables and charts, both made from one data file so they cannot disagree.

A mkdocs hook (``hooks:`` in mkdocs.yml; https://www.mkdocs.org/user-guide/configuration/#hooks):
:func:`on_page_markdown` replaces each ``<!-- benchmark: KEY -->`` line of
``explanation/performance.md`` with the run it comes from, an inline SVG bar chart and a
Markdown table, all made from ``tables.KEY`` of :data:`DATA` (``docs/explanation/
performance.json``). Every table of the file must have its marker and every marker its table.
A missing, oversized or malformed file, or a marker without a table, fails the build
(:class:`mkdocs.exceptions.PluginError`: one line naming the file, the key and the fix).

The data file (JSON, https://www.rfc-editor.org/rfc/rfc8259), ``version`` 1::

    {"version": 1, "tables": {KEY: {
        "title": str,            # the chart's <title>: what is measured
        "subject": str,          # the first column's heading (Markdown: `ml`)
        "peer": str,             # the floor or peer measured in the same run: "conda 26.7.1"
        "script": str,           # the benchmark that prints the figures: "benchmarks/vs_conda.py"
        "run": {"date": "YYYY-MM-DD", "machine": str, "method": str, "load": str | null},
        "rows": [{"stage": str, "unit": str, "envbuild": float > 0, "peer": float > 0,
                  "goal": float > 0 | null}]   # goal: the largest envbuild / peer ratio wanted
    }}}

The chart (deterministic: the same file gives the same bytes; no script, no external file):
per stage, two horizontal bars, envbuild's and the peer's, scaled to the larger of the two (the
stages of one table may have different units), each labelled with its value and unit; where a
stage has a goal, a dashed line across both bars at ``goal x peer``: envbuild's bar ending left
of it meets the goal. Every text is XML-escaped; the SVG has a ``<title>`` and ``<desc>``
(``role="img"``) and the table with the same figures follows it.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "explanation" / "performance.json"
PAGE = "explanation/performance.md"
LIMIT = 64 * 1024  # bytes of the data file read at most
MARKER = re.compile(r"^<!-- benchmark: ([\w-]+) -->$", re.M)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
WIDTH, BAR, GAP, LABEL, BARS_X, BARS_W = 640, 14, 4, 18, 4, 470  # SVG geometry, CSS pixels
COLORS = {"envbuild": "#3f51b5", "peer": "#9e9e9e", "goal": "#d32f2f", "text": "#333333"}


class DataError(Exception):
    """The data file is missing or malformed; the message names the key and the fix."""


@dataclass(frozen=True, slots=True)
class Row:
    """One stage: both figures in ``unit``; ``goal`` the largest envbuild / peer ratio wanted."""

    stage: str
    unit: str
    envbuild: float
    peer: float
    goal: float | None

    @property
    def ratio(self) -> float:
        return self.envbuild / self.peer


@dataclass(frozen=True, slots=True)
class Table:
    """One benchmark table of the data file (see the module docstring for its keys)."""

    key: str
    title: str
    subject: str
    peer: str
    script: str
    date: str
    machine: str
    method: str
    load: str | None
    rows: tuple[Row, ...]


def _get(node: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    value = node.get(key)
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and isinstance(value, str):
        ok = bool(value.strip())
    if ok and isinstance(value, int | float):
        ok = math.isfinite(value) and value > 0
    if not ok:
        names: dict[object, str] = {str: "a non-empty string", dict: "an object", list: "a list"}
        want = names.get(kind, "a positive number")  # (int, float): a positive number
        raise DataError(f"{where}.{key}: expected {want}, got {json.dumps(value)[:60]}")
    return value


def _row(node: Any, where: str) -> Row:
    if not isinstance(node, dict):
        raise DataError(f"{where}: expected an object")
    goal = node.get("goal")
    return Row(
        stage=_get(node, "stage", where, str),
        unit=_get(node, "unit", where, str),
        envbuild=float(_get(node, "envbuild", where, (int, float))),
        peer=float(_get(node, "peer", where, (int, float))),
        goal=None if goal is None else float(_get(node, "goal", where, (int, float))),
    )


def _table(key: str, node: Any) -> Table:
    where = f"tables.{key}"
    if not isinstance(node, dict):
        raise DataError(f"{where}: expected an object")
    run = _get(node, "run", where, dict)
    date = _get(run, "date", f"{where}.run", str)
    if not _DATE.fullmatch(date):
        raise DataError(f"{where}.run.date: expected YYYY-MM-DD, got {json.dumps(date)[:60]}")
    load = run.get("load")
    rows = _get(node, "rows", where, list)
    if not rows:
        raise DataError(f"{where}.rows: expected a non-empty list")
    return Table(
        key=key,
        title=_get(node, "title", where, str),
        subject=_get(node, "subject", where, str),
        peer=_get(node, "peer", where, str),
        script=_get(node, "script", where, str),
        date=date,
        machine=_get(run, "machine", f"{where}.run", str),
        method=_get(run, "method", f"{where}.run", str),
        load=None if load is None else _get(run, "load", f"{where}.run", str),
        rows=tuple(_row(r, f"{where}.rows[{i}]") for i, r in enumerate(rows)),
    )


def load(path: Path = DATA) -> dict[str, Table]:
    """The tables of the data file at ``path``, by key, in the file's order. Raises
    :class:`DataError` if it is missing, larger than :data:`LIMIT` bytes, not JSON, not
    version 1 or any key is missing or of the wrong type."""
    try:
        with path.open("rb") as f:
            raw = f.read(LIMIT + 1)
    except OSError as e:
        raise DataError(f"cannot read it ({e.strerror})") from None
    if len(raw) > LIMIT:
        raise DataError(f"larger than {LIMIT} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"not JSON ({e})") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise DataError("expected an object with version 1")
    tables = data.get("tables")
    if not isinstance(tables, dict) or not tables:
        raise DataError("tables: expected a non-empty object")
    for key in tables:
        if not re.fullmatch(r"[\w-]+", key):
            raise DataError(f"tables.{json.dumps(key)[:60]}: a key is letters, digits, _ or -")
    return {key: _table(key, node) for key, node in tables.items()}


def _num(v: float) -> str:
    """A figure as the data file writes it (``10.71``, ``632.1``, ``1``): no digit dropped."""
    return f"{v:g}"


def _plain(text: str) -> str:
    """Markdown text as the chart shows it: code-span backticks dropped, then XML-escaped."""
    return html.escape(text.replace("`", ""), quote=True)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: code spans kept, ``< > &`` outside them as entities."""
    parts = re.split(r"(`[^`\n]*`)", text.replace("|", "\\|").replace("\n", " "))
    return "".join(p if p.startswith("`") else html.escape(p, quote=False) for p in parts)


def chart(t: Table) -> str:
    """The inline SVG of ``t`` (one line per element, no blank line: a raw HTML block)."""
    lane = LABEL + 2 * BAR + GAP + 10
    height = 24 + lane * len(t.rows)
    ident = f"perf-{t.key}"
    desc = (
        f"Per stage, envbuild's bar and {_plain(t.peer)}'s, each scaled to the larger of the "
        "two; a dashed line marks the goal (envbuild at most goal times the peer)."
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="benchmark-chart" role="img" '
        f'id="{ident}" aria-labelledby="{ident}-title {ident}-desc" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" '
        f'font-size="12">',
        f'<title id="{ident}-title">{_plain(t.title)}: envbuild against {_plain(t.peer)}</title>',
        f'<desc id="{ident}-desc">{desc}</desc>',
    ]
    legend = (("envbuild", "envbuild", 4), ("peer", t.peer, 110))
    for kind, name, x in legend:
        out.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{COLORS[kind]}"/>')
        out.append(f'<text x="{x + 14}" y="13" fill="{COLORS["text"]}">{_plain(name)}</text>')
    if any(r.goal is not None for r in t.rows):
        x = 144 + 7 * len(t.peer.replace("`", ""))  # past the peer's name (7 px a character)
        out.append(
            f'<line x1="{x}" y1="3" x2="{x}" y2="15" stroke="{COLORS["goal"]}" '
            'stroke-width="2" stroke-dasharray="3,2"/>'
        )
        out.append(f'<text x="{x + 6}" y="13" fill="{COLORS["text"]}">goal</text>')
    for i, r in enumerate(t.rows):
        y = 24 + i * lane
        scale = BARS_W / max(r.envbuild, r.peer)
        stage = _plain(r.stage)
        out.append(f'<text x="{BARS_X}" y="{y + 12}" fill="{COLORS["text"]}">{stage}</text>')
        for j, (kind, value) in enumerate((("envbuild", r.envbuild), ("peer", r.peer))):
            top = y + LABEL + j * (BAR + GAP)
            w = round(value * scale, 1)
            out.append(
                f'<rect class="bar {kind}" data-stage="{stage}" data-value="{value!r}" '
                f'x="{BARS_X}" y="{top}" width="{w}" height="{BAR}" fill="{COLORS[kind]}"/>'
            )
            out.append(
                f'<text x="{BARS_X + w + 4}" y="{top + BAR - 3}" fill="{COLORS["text"]}">'
                f"{_num(value)} {_plain(r.unit)}</text>"
            )
        if r.goal is not None:
            gx = round(BARS_X + min(r.goal * r.peer * scale, BARS_W + 40), 1)
            out.append(
                f'<line class="goal" data-stage="{stage}" data-goal="{r.goal!r}" x1="{gx}" '
                f'y1="{y + LABEL - 2}" x2="{gx}" y2="{y + LABEL + 2 * BAR + GAP + 2}" '
                f'stroke="{COLORS["goal"]}" stroke-width="2" stroke-dasharray="3,2"/>'
            )
    out.append("</svg>")
    return "\n".join(out)


def table(t: Table) -> str:
    """The Markdown table of ``t``: figures, the ratio envbuild / peer, the goal."""
    lines = [
        f"| {_cell(t.subject)} | envbuild | {_cell(t.peer)} | envbuild / peer | goal |",
        "|---|---|---|---|---|",
    ]
    for r in t.rows:
        goal = f"<= {r.goal:.2f}x" if r.goal is not None else ""
        lines.append(
            f"| {_cell(r.stage)} | {_num(r.envbuild)} {_cell(r.unit)} | "
            f"{_num(r.peer)} {_cell(r.unit)} | {r.ratio:.2f}x | {goal} |"
        )
    return "\n".join(lines)


def section(t: Table) -> str:
    """What replaces ``<!-- benchmark: KEY -->``: the run, the chart, the table."""
    load = f"load {_cell(t.load)}" if t.load else "load not recorded"
    run = (
        f"Run of {t.date} ({_cell(t.machine)}, {_cell(t.method)}, {load}), printed by "
        f"`{t.script.replace('`', '')}`; the chart and the table are made from "
        "`docs/explanation/performance.json`:"
    )
    figure = f'<figure class="benchmark">\n{chart(t)}\n</figure>'
    return f"{run}\n\n{figure}\n\n{table(t)}\n"


def render(markdown: str, tables: dict[str, Table]) -> str:
    """``markdown`` with each marker replaced by its :func:`section`. Raises
    :class:`DataError` if a marker names no table or a table has no marker."""
    used = MARKER.findall(markdown)
    unknown = [k for k in used if k not in tables]
    if unknown:
        raise DataError(f"the page asks for tables.{unknown[0]}, which the file does not have")
    unused = [k for k in tables if k not in used]
    if unused:
        raise DataError(f"tables.{unused[0]} has no <!-- benchmark: {unused[0]} --> on the page")
    return MARKER.sub(lambda m: section(tables[m.group(1)]), markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs hook: the performance page's markers replaced; other pages unchanged."""
    if page.file.src_uri != PAGE:
        return markdown
    from mkdocs.exceptions import PluginError

    try:
        return render(markdown, load())
    except DataError as e:
        raise PluginError(
            f"docs/explanation/performance.json: {e}; fix the file "
            "(its format: docs/gen_performance.py)"
        ) from None
