"""The nightly as a page: ``reports/index.html``, one row per environment, written beside
``reports/nightly.md`` by every nightly (and by the scheduled workflow's merge step).

Each row: the night's outcome (a failure marked and its reason shown), lock age, what the
night changed in the lock (:mod:`envbuild.lock.diff`), smoke checks, environment and tarball
sizes, the image and its digest, the published digest, verify, and three small charts over
the kept nights: environment size (MB), locked packages for this platform, and the night's
duration (s).

The page is static: rendered from ``templates/nightly/index.html.j2`` (the project's, then
envbuild's) with Jinja2's autoescaping on, so every recipe name, package name and error
message is shown as text; a Content-Security-Policy allows no script and no external file, so
it works from ``file://`` with no network. Charts are inline SVG whose coordinates are computed
here (deterministic: the same history gives the same bytes).

History: one small JSON per night under ``reports/history/`` (``<YYYYMMDDTHHMMSSZ>.json``:
``{"night": ISO time, "envs": {name: {"status", "env_bytes", "packages", "seconds"}}}``); the
newest :data:`KEEP_NIGHTS` are kept, older ones deleted. A file that is too big, not JSON or of
the wrong shape is skipped with a warning, never trusted.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from envbuild.errors import EnvBuildError
from envbuild.lock.diff import KINDS, Change, summary
from envbuild.lock.lockfile import read_packages
from envbuild.ops.nightly import NightlyResult
from envbuild.ops.status import EnvStatus, env_status
from envbuild.project import Project
from envbuild.recipe.model import current_subdir
from envbuild.util import templates
from envbuild.util.fs import atomic_write, read_bounded
from envbuild.util.redact import printable

log = logging.getLogger("envbuild")

KEEP_NIGHTS = 30  # history files kept under reports/history/
HISTORY_LIMIT = 256 * 1024  # bytes read from one history file at most
ERROR_CHARS = 4000  # of a failure's message shown on the page (the rest is in nightly.md)
CHANGES_SHOWN = 200  # lock changes listed per environment; the count says how many more
FIELD_CHARS = 200  # of any other text shown (a name, a version, an image reference)
TEMPLATE = "nightly/index.html.j2"
_NIGHT_FILE = re.compile(r"\d{8}T\d{6}Z\.json")
CHART_W, CHART_H, PAD = 90, 18, 2  # an SVG chart's size in CSS pixels, inner padding


@dataclass(frozen=True, slots=True)
class Chart:
    """One history chart: ``points`` is the SVG polyline (``"x,y x,y"``, viewBox
    ``0 0 CHART_W CHART_H``), ``dot`` the last point's ``(x, y)``, ``last`` its value as text,
    ``span`` ``"MIN to MAX"`` over the nights shown."""

    label: str
    points: str
    dot: tuple[float, float]
    last: str
    span: str
    nights: int


@dataclass(frozen=True, slots=True)
class Row:
    """One environment's row; sizes already as text (MB), "-" for none."""

    recipe: str
    status: str  # promoted / proposed / unchanged / failed
    failed: bool
    outcome: str  # "promoted", "FAILED at smoke", ...
    error: str
    lock_age: str
    changes: tuple[Change, ...]
    changes_more: int
    change_summary: str
    smoke: str
    env_size: str
    tarball: str
    image: str
    image_digest: str
    published: str
    verify: str
    duration: str
    solved_as_of: str
    charts: tuple[Chart, ...]


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if _number(n) else "-"


def _text(value: object, limit: int = FIELD_CHARS) -> str:
    """``value`` as the page shows it: control and format characters (a bidi override that
    would show the rest of a message reversed, ESC, NUL) as visible escapes, URL
    credentials masked, at most ``limit`` characters (:func:`envbuild.util.redact.printable`);
    the page's autoescaping then makes it text."""
    return printable(value, limit)


def _lines(value: str, limit: int) -> str:
    """A multi-line message through :func:`_text` line by line, newlines kept, ``limit``
    characters in all."""
    cut = value[:limit]
    shown = "\n".join(_text(ln, limit) for ln in cut.split("\n"))
    return shown + ("…" if len(value) > limit else "")


def _shown(c: Change) -> Change:
    return Change(**{f.name: _text(getattr(c, f.name)) for f in fields(Change)})


def package_count(project: Project, name: str) -> int:
    """Packages the current lock of ``name`` holds for this machine's platform (0: no lock or
    an unreadable one)."""
    try:
        locked = read_packages(project.lockfile(name))
    except EnvBuildError:
        return 0
    return sum(p.get("platform") == current_subdir() for p in locked.packages)


def chart(label: str, values: list[float], fmt: str = "{:.0f}") -> Chart:
    """A polyline of ``values`` (oldest first) scaled into the chart box: x evenly spaced,
    y from the minimum (bottom) to the maximum (top); one value is a dot in the middle."""
    n = len(values)
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
    width, height = CHART_W - 2 * PAD, CHART_H - 2 * PAD
    pts = []
    for i, v in enumerate(values):
        x = PAD + (width * i / (n - 1) if n > 1 else width / 2)
        y = PAD + (height * (1 - (v - lo) / (hi - lo)) if hi > lo else height / 2)
        pts.append((round(x, 1), round(y, 1)))
    return Chart(
        label=label,
        points=" ".join(f"{x},{y}" for x, y in pts),
        dot=pts[-1] if pts else (0.0, 0.0),
        last=fmt.format(values[-1]) if values else "-",
        span=f"{fmt.format(lo)} to {fmt.format(hi)}" if values else "",
        nights=n,
    )


def night_point(result: NightlyResult, status: EnvStatus | None, packages: int) -> dict[str, Any]:
    """What the history keeps of one environment's night: the environment's size after the
    night (the candidate's if it was built, else the current build's), its package count,
    the night's status and duration."""
    size = result.env_bytes or (status.build_bytes if status else 0)
    return {"status": result.status, "env_bytes": size, "packages": packages,
            "seconds": result.seconds}  # fmt: skip


def record_night(history: Path, night: float, points: dict[str, dict[str, Any]]) -> Path:
    """Write ``history/<night as YYYYMMDDTHHMMSSZ>.json`` and delete all but the newest
    :data:`KEEP_NIGHTS` night files up to this one (a file dated after this night is no
    night that happened: it neither counts nor pushes this one out). ``night``: seconds since
    the epoch. Returns the file."""
    path = history / _night_file(night)
    stamp = time.gmtime(night)
    doc = {"night": time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp), "envs": points}
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=True))
    kept = sorted(
        p for p in history.iterdir() if _NIGHT_FILE.fullmatch(p.name) and p.name <= path.name
    )
    for old in kept[:-KEEP_NIGHTS]:
        old.unlink(missing_ok=True)
    return path


def _night_file(night: float) -> str:
    """``YYYYMMDDTHHMMSSZ.json`` for ``night`` (seconds since the epoch, UTC); such names sort
    as their times."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(night))}.json"


def _number(v: object) -> float | None:
    """``v`` if it is a plausible count or size (a finite number, 0 <= v < 1e15), else None
    (NaN, infinity, negative, a string, a boolean)."""
    ok = isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1e15
    return float(v) if ok else None  # type: ignore[arg-type]


def load_history(
    history: Path, until: float | None = None
) -> dict[str, list[tuple[float, float, float]]]:
    """name -> [(env_bytes, packages, seconds), ...] over the kept nights, oldest first, up to
    the night ``until`` (seconds since the epoch; None: every file). Files are data from
    whoever could write reports/: read bounded (no symlink followed), shape-checked, numbers
    that are no size or count (NaN, negative) dropped, a file dated after ``until`` ignored,
    skipped with a warning when wrong."""
    out: dict[str, list[tuple[float, float, float]]] = {}
    last = _night_file(until) if until is not None else None
    files = sorted(
        p
        for p in history.glob("*.json")
        if _NIGHT_FILE.fullmatch(p.name) and (last is None or p.name <= last)
    )
    for path in files[-KEEP_NIGHTS:]:
        try:
            doc = json.loads(read_bounded(path, HISTORY_LIMIT, follow_symlinks=False))
            envs = doc["envs"]
            if not isinstance(envs, dict):
                raise TypeError("envs is not an object")
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("%s: skipped (%s)", path.name, e)
            continue
        for name, p in envs.items():
            if not isinstance(name, str) or not isinstance(p, dict):
                continue
            nums = [_number(p.get(k)) for k in ("env_bytes", "packages", "seconds")]
            if all(n is not None for n in nums):
                out.setdefault(name, []).append((nums[0], nums[1], nums[2]))  # type: ignore[arg-type]
    return out


def _field(record: object, key: str) -> object:
    """``record[key]`` of a dict, else ``record.key`` (results as dicts or as dataclasses)."""
    return record.get(key) if isinstance(record, dict) else getattr(record, key, None)


def _change(c: object) -> Change:
    if isinstance(c, Change):
        return c
    return Change(**{f.name: str(_field(c, f.name) or "") for f in fields(Change)})


def _verify(r: NightlyResult, st: EnvStatus | None) -> str:
    """The candidate's verify when the night ran it, else the current build's."""
    if r.status in ("promoted", "proposed"):
        return "clean"
    if r.status == "failed" and r.stage == "verify":
        return "drifted"
    return (st.verify if st else "") or "-"


def _charts(series: list[tuple[float, float, float]]) -> tuple[Chart, ...]:
    return (
        chart("size MB", [s[0] / 1e6 for s in series], "{:.1f}"),
        chart("packages", [s[1] for s in series]),
        chart("seconds", [s[2] for s in series], "{:.1f}"),
    )


def rows(
    results: list[NightlyResult],
    statuses: dict[str, EnvStatus | None],
    history: dict[str, list[tuple[float, float, float]]],
    now: float,
) -> list[Row]:
    """The page's rows, one per result, in the results' order (pure)."""
    out = []
    for r in results:
        st = statuses.get(r.recipe)
        changes = [_change(c) for c in r.changes] if r.status != "unchanged" else []
        changes.sort(key=lambda c: (c.platform, KINDS.index(c.kind), c.name))
        failed = r.status == "failed"
        passed = sum(_field(c, "returncode") == 0 for c in r.smoke)
        smoke = f"{passed}/{len(r.smoke)} passed" if r.smoke else (st.smoke if st else "-")
        out.append(
            Row(
                recipe=_text(r.recipe),
                status=_text(r.status, 40),
                failed=failed,
                outcome=f"FAILED at {_text(r.stage or '?', 40)}" if failed else _text(r.status),
                error=_lines(r.error, ERROR_CHARS),
                lock_age=_age(st.lock_age) if st and _number(st.lock_age) else "-",
                changes=tuple(_shown(c) for c in changes[:CHANGES_SHOWN]),
                changes_more=max(0, len(changes) - CHANGES_SHOWN),
                change_summary=summary(changes) if r.status != "unchanged" else "no change",
                smoke=smoke,
                env_size=_mb(r.env_bytes or (st.build_bytes if st else 0)),
                tarball=_mb(r.tarball_bytes or (st.tarball_bytes if st else 0)),
                image=_text(r.image or (st.image if st else "") or "-"),
                image_digest=_text((st.image_digest if st else "") or ""),
                published=_text((st.published if st else "") or "-"),
                verify=_text(_verify(r, st)),
                duration=f"{r.seconds:.1f} s" if _number(r.seconds) is not None else "-",
                solved_as_of=_text(r.exclude_newer or "-"),
                charts=_charts(history.get(r.recipe, [])),
            )
        )
    return out


def render(page_rows: list[Row], generated: str, template_dirs: list[Path]) -> str:
    """The HTML page (autoescaped: no value reaches it unescaped). Raises EnvBuildError if
    the template does not render."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dirs),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    failed = sum(r.failed for r in page_rows)
    try:
        return env.get_template(TEMPLATE).render(
            rows=page_rows, generated=generated, failed=failed, keep=KEEP_NIGHTS,
            width=CHART_W, height=CHART_H,
        )  # fmt: skip
    except jinja2.TemplateError as e:
        msg = f"{TEMPLATE}: {type(e).__name__}: {e}; fix the project's templates/{TEMPLATE}"
        raise EnvBuildError(msg) from None


def merged_results(outcome: dict[str, str], reports: Path) -> list[NightlyResult]:
    """The scheduled workflow's merge outcome (recipe -> ``accepted`` / ``unchanged`` /
    ``rejected: <why>``, :func:`envbuild.ops.ci.merge`) as the page's results: accepted is
    ``proposed`` (its pull request carries it), rejected is failed at ``ci`` with its reason.
    Changes come from the lock job's ``<recipe>.lock-diff.json`` in ``reports`` (a downloaded
    artifact: read bounded, shape-checked; missing or malformed means none shown)."""
    out = []
    for name, what in outcome.items():
        status = {"accepted": "proposed", "unchanged": "unchanged"}.get(what, "failed")
        error = what.removeprefix("rejected: ") if status == "failed" else ""
        changes = _artifact_changes(reports / f"{name}.lock-diff.json")
        out.append(NightlyResult(recipe=name, status=status, stage="ci" if error else "",
                                 error=error, changes=changes))  # fmt: skip
    return out


def _artifact_changes(path: Path) -> list[dict[str, str]]:
    try:
        doc = json.loads(read_bounded(path, HISTORY_LIMIT * 16, follow_symlinks=False))
        found = doc["changes"]
        if not isinstance(found, list):
            raise TypeError("changes is not a list")
    except FileNotFoundError:  # an unchanged lock has no diff
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("%s: no changes shown (%s)", path.name, e)
        return []
    names = [f.name for f in fields(Change)]
    return [
        {k: c[k] for k in names}
        for c in found[: CHANGES_SHOWN * 10]
        if isinstance(c, dict) and all(isinstance(c.get(k), str) for k in names)
        and c["kind"] in KINDS
    ]  # fmt: skip


def write_page(project: Project, results: list[NightlyResult], now: float | None = None) -> Path:
    """Record this night in ``reports/history/`` and write ``reports/index.html``; returns
    it. ``now``: the night's time (seconds since the epoch; default the current time).
    Raises OSError if reports/ cannot be written, EnvBuildError for a broken template."""
    now = time.time() if now is None else now
    statuses: dict[str, EnvStatus | None] = {}
    points = {}
    for r in results:
        try:
            statuses[r.recipe] = env_status(project, r.recipe, now)
        except (EnvBuildError, OSError) as e:  # the page still shows the night's result
            log.warning("nightly page: %s: no status (%s)", r.recipe, e)
            statuses[r.recipe] = None
        points[r.recipe] = night_point(r, statuses[r.recipe], package_count(project, r.recipe))
    history = project.path("reports") / "history"
    record_night(history, now, points)
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    page = render(rows(results, statuses, load_history(history, until=now), now), generated,
                  templates.search_path(project.path("templates")))  # fmt: skip
    out = project.path("reports") / "index.html"
    atomic_write(out, page)
    return out
