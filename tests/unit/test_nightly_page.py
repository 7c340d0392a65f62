"""The nightly page (issue 32): reports/index.html rendered in-process from hand-made results;
hostile names and messages shown as text; failures marked; history bounded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from envbuild.commands import maintenance
from envbuild.errors import EnvBuildError
from envbuild.ops import nightly_page as page
from envbuild.ops.nightly import NightlyResult
from envbuild.project import load_project
from envbuild.util import templates

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'
CHANGE = {"platform": "linux-64", "manager": "conda", "name": "greeting", "kind": "upgraded",
          "old": "1.0 py_0", "new": "2.0 py_0"}  # fmt: skip
SMOKE_OK = [{"kind": "import", "target": "greeting", "returncode": 0, "stderr": ""}]


def _results() -> list[NightlyResult]:
    return [
        NightlyResult(recipe="good", status="unchanged", seconds=1.5, changes=[]),
        NightlyResult(
            recipe="flaky",
            status="failed",
            stage="smoke",
            error=f"import greeting: exit 1: ImportError {HOSTILE}",
            changes=[CHANGE, {**CHANGE, "name": f"pkg{HOSTILE}", "kind": "added", "old": ""}],
            smoke=[{**SMOKE_OK[0], "returncode": 1}],
            seconds=20.0,
        ),
        NightlyResult(
            recipe="ml",
            status="promoted",
            changes=[CHANGE],
            smoke=SMOKE_OK,
            env_bytes=123_400_000,
            tarball_bytes=45_600_000,
            seconds=90.0,
        ),
    ]


def _render(tmp_path: Path, results: list[NightlyResult]) -> str:
    history = {"ml": [(100e6, 50.0, 80.0), (123.4e6, 52.0, 90.0)]}
    rows = page.rows(results, {}, history, now=0.0)
    return page.render(rows, "2026-12-08 03:17:00 UTC", templates.search_path(tmp_path))


def test_every_environment_has_a_row_and_a_failure_is_marked(tmp_path: Path) -> None:
    html = _render(tmp_path, _results())
    envs = re.findall(r'<tr class="env (\w+)" data-recipe="([^"]*)" data-status="(\w+)"', html)
    assert envs == [("ok", "good", "unchanged"), ("failed", "flaky", "failed"),
                    ("ok", "ml", "promoted")]  # fmt: skip
    assert '<span class="badge s-failed">FAILED at smoke</span>' in html
    assert html.count('class="error-row"') == 1 and "1 failed" in html
    assert "123.4 MB" in html and "45.6 MB" in html and "1 upgraded" in html
    assert "0/1 passed" in html and "1/1 passed" in html
    verify = re.findall(r'<td class="verify">([^<]*)</td>', html)
    assert verify == ["-", "-", "clean"]  # ml's candidate passed verify; no status for others


def test_hostile_names_and_messages_are_text(tmp_path: Path) -> None:
    hostile = NightlyResult(recipe=HOSTILE, status="failed", stage="lock", error=HOSTILE)
    results = [*_results(), hostile]
    html = _render(tmp_path, results)
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;" in html
    assert f'data-recipe="{HOSTILE}"' not in html
    # the policy forbids scripts and external loads even if a template override let one in
    assert "default-src 'none'" in html


def test_bidi_controls_long_fields_and_bad_numbers_are_shown_bounded(tmp_path: Path) -> None:
    """Hostile review: a right-to-left override in a failure message showed the rest of it
    reversed (``txet`` read as ``text``); a package name or version from a lock diff was shown
    whole (100,000 characters in one cell); NaN or negative sizes and durations showed as
    ``nan s`` and ``-0.0 MB``; a token in a URL of a message was shown."""
    change = {**CHANGE, "name": "x" * 100_000, "new": "2.0\u202eevil"}
    hostile = NightlyResult(
        recipe="odd", status="failed", stage="smoke\u202e" + "s" * 500,
        error="line one\nfetch https://user:s3cret@host/x failed \u202etxet\x1b[31m",
        changes=[change], env_bytes=-1, seconds=float("nan"),
    )  # fmt: skip
    html = _render(tmp_path, [hostile])
    assert "\u202e" not in html and "\x1b" not in html and "s3cret" not in html
    assert "\\u202etxet\\x1b[31m" in html and "line one\nfetch" in html  # newlines kept
    assert "x" * (page.FIELD_CHARS + 1) not in html and "2.0\\u202eevil" in html
    assert "FAILED at smoke\\u202e" in html and "s" * 100 not in html
    row = re.search(r'<tr class="env failed".*?</tr>', html, re.S)
    assert row is not None and "nan" not in row.group(0) and "-0.0" not in row.group(0)


def test_history_ignores_nights_after_this_one_and_impossible_numbers(tmp_path: Path) -> None:
    """Hostile review: files dated in the future sorted last, so with KEEP_NIGHTS of them
    tonight's file was deleted as soon as it was written and the charts showed only them."""
    history = tmp_path / "history"
    history.mkdir()
    future = {"envs": {"a": {"env_bytes": 9, "packages": 999, "seconds": 1}}}
    for year in range(2990, 2990 + page.KEEP_NIGHTS):
        (history / f"{year}0101T000000Z.json").write_text(json.dumps(future))
    bad = {"envs": {"a": {"env_bytes": -1, "packages": 1, "seconds": 1}}}
    (history / "19700101T000000Z.json").write_text(json.dumps(bad))
    point = {"status": "promoted", "env_bytes": 1000, "packages": 3, "seconds": 1.0}
    tonight = page.record_night(history, 86400.0, {"a": point})
    assert tonight.is_file()
    assert page.load_history(history, until=86400.0)["a"] == [(1000.0, 3.0, 1.0)]
    nan = '{"envs": {"a": {"env_bytes": NaN, "packages": 1, "seconds": 1}}}'
    (history / "19700101T000001Z.json").write_text(nan)  # json.loads takes NaN
    assert page.load_history(history, until=86400.0)["a"] == [(1000.0, 3.0, 1.0)]


def test_charts_are_computed_and_deterministic() -> None:
    one = page.chart("packages", [50.0, 52.0, 51.0])
    assert one == page.chart("packages", [50.0, 52.0, 51.0])
    assert one.points == "2.0,16.0 45.0,2.0 88.0,9.0" and one.last == "51"
    assert one.span == "50 to 52" and one.nights == 3
    flat = page.chart("seconds", [7.0])
    assert flat.points == "45.0,9.0" and flat.dot == (45.0, 9.0)
    assert page.chart("size MB", []).last == "-"


def test_history_keeps_the_last_nights_and_skips_bad_files(tmp_path: Path) -> None:
    history = tmp_path / "history"
    point = {"status": "promoted", "env_bytes": 1000, "packages": 3, "seconds": 1.0}
    for night in range(page.KEEP_NIGHTS + 5):
        page.record_night(history, 86400.0 * night, {"a": {**point, "packages": night}})
    files = sorted(history.iterdir())
    assert len(files) == page.KEEP_NIGHTS and files[0].name == "19700106T000000Z.json"
    files[0].write_text("not json")
    files[1].write_text(json.dumps({"envs": {"a": {**point, "packages": "many"}}}))
    (history / "19700101T000000Z.json").symlink_to("/dev/zero")
    series = page.load_history(history)["a"]
    assert [s[1] for s in series] == list(range(7, page.KEEP_NIGHTS + 5))


def test_write_page_renders_from_the_project_and_a_template_override(tmp_path: Path) -> None:
    (tmp_path / "envbuild.toml").write_text("")
    project = load_project(tmp_path)
    out = page.write_page(project, _results(), now=86400.0)
    assert out == tmp_path / "reports" / "index.html"
    assert out.read_text().count('<tr class="env ') == 3
    assert (tmp_path / "reports" / "history" / "19700102T000000Z.json").is_file()
    own = tmp_path / "templates" / "nightly"
    own.mkdir(parents=True)
    (own / "index.html.j2").write_text("{% for r in rows %}{{ r.recipe }};{% endfor %}")
    assert page.write_page(project, _results()).read_text() == "good;flaky;ml;"


def test_the_workflow_merge_outcome_as_results(tmp_path: Path) -> None:
    bad = {**CHANGE, "kind": "<b>replaced</b>"}
    doc = {"recipe": "a", "changes": [CHANGE, bad, {**CHANGE, "old": 3}, "x"]}
    (tmp_path / "a.lock-diff.json").write_text(json.dumps(doc))
    (tmp_path / "b.lock-diff.json").write_text('{"changes": {"not": "a list"}}')
    outcome = {"a": "accepted", "b": "rejected: osx-arm64 failed", "c": "unchanged"}
    results = page.merged_results(outcome, tmp_path)
    assert [(r.recipe, r.status, r.stage, r.error) for r in results] == [
        ("a", "proposed", "", ""),
        ("b", "failed", "ci", "osx-arm64 failed"),
        ("c", "unchanged", "", ""),
    ]
    assert results[0].changes == [CHANGE] and results[1].changes == []


def test_reports_that_cannot_be_written_are_one_line_and_the_status_stays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "envbuild.toml").write_text("")
    (tmp_path / "reports").write_text("a file where the reports directory should be")
    state = tmp_path / "build" / "state" / "nightly"
    state.mkdir(parents=True)
    (state / "good.result.json").write_text(_results()[0].to_json())
    maintenance.nightly_report(str(tmp_path), "good")  # the night passed: no error
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("nightly: reports not written: ")
    with pytest.raises(EnvBuildError, match="nightly failed for other"):  # no result: failed
        maintenance.nightly_report(str(tmp_path), "good,other")
