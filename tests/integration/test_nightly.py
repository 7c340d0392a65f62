"""Issue 5: nightly rebuilds that promote only what passes, rollback, gc; quiet nights, cutoffs
and propose mode (issue 12)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from envbuild.install import bytecode
from envbuild.install.build import complete_builds
from envbuild.install.trash import retired_builds
from envbuild.layout import lock_copy, read_marker
from envbuild.ops import gc
from envbuild.project import load_project
from envbuild.ship import engine as image

from ..conftest import TINY_RECIPE, Project
from ..support.fakechannel import index, make_module_package
from .test_nightly_page import check_page

FLAKY = """\
dependencies: ['python 3.11.*', greeting]
smoke:
  imports: [greeting]
"""


@pytest.fixture
def nightly_project(make_project, channel: Path, tmp_path: Path) -> Project:  # type: ignore[no-untyped-def]
    own = tmp_path / "own-channel"
    shutil.copytree(channel, own)
    make_module_package(own, "greeting", "1.0", "MESSAGE = 'hello'\n")
    index(own)
    project = make_project(mirror=str(own), recipes={"good": None, "flaky": FLAKY})
    toml = project.root / "envbuild.toml"
    toml.write_text(toml.read_text().replace("tiny", "good") + "[builds]\nkeep = 2\n")
    project.write_recipe("good", TINY_RECIPE.format(name="good"))
    return project


def _current(project: Project, name: str) -> str:
    info = read_marker(project.root / "envs" / name)
    assert info is not None
    return info.build_id


def _imports(project: Project, name: str, module: str) -> bool:
    py = project.root / "envs" / name / "bin" / "python"
    return subprocess.run([py, "-I", "-c", f"import {module}"], capture_output=True).returncode == 0


def test_nightly_promotes_passing_and_keeps_failing_environments(nightly_project: Project) -> None:
    p = nightly_project
    first = p.doit("nightly")
    assert "| good | promoted |" in first.stdout and "| flaky | promoted |" in first.stdout
    good1, flaky1 = _current(p, "good"), _current(p, "flaky")
    first_report = json.loads((p.root / "reports" / "nightly.json").read_text())
    # what nightly promoted is current for every stage: a plain run has nothing to do
    assert Project.executed(p.doit("docker")) == []
    lock_before = (p.root / "locks" / "flaky.conda-lock.yml").read_bytes()
    tarball_before = next((p.root / "dist").glob("flaky-*.tar.zst")).read_bytes()
    # upstream publishes a greeting 2.0 that cannot be imported
    channel = Path(load_project(p.root).mirrors["conda-forge"])
    make_module_package(channel, "greeting", "2.0", "raise ImportError('greeting 2.0 is broken')\n")
    index(channel)
    second = p.doit("nightly", check=False)
    assert second.returncode != 0
    assert "| flaky | FAILED at smoke |" in second.stdout
    assert "| good | unchanged |" in second.stdout  # its fresh solve locked the same packages
    assert _current(p, "flaky") == flaky1 and _imports(p, "flaky", "greeting")
    assert _current(p, "good") == good1
    assert (p.root / "locks" / "flaky.conda-lock.yml").read_bytes() == lock_before
    assert next((p.root / "dist").glob("flaky-*.tar.zst")).read_bytes() == tarball_before
    report = json.loads((p.root / "reports" / "nightly.json").read_text())
    flaky = next(r for r in report if r["recipe"] == "flaky")
    assert flaky["status"] == "failed" and flaky["stage"] == "smoke"
    assert "greeting 2.0 is broken" in flaky["error"]
    assert {
        "name": "greeting",
        "kind": "upgraded",
        "old": "1.0 py_0",
        "new": "2.0 py_0",
        "platform": "linux-64",
        "manager": "conda",
    } in flaky["changes"]
    good = next(r for r in report if r["recipe"] == "good")
    assert good["status"] == "unchanged" and good["seconds"] > 0 and not good["build_id"]
    good = next(r for r in first_report if r["recipe"] == "good")
    assert good["env_bytes"] > 10_000_000 and good["tarball_bytes"] > 1_000_000
    assert good["build_seconds"] > 0 and good["smoke"]
    md = (p.root / "reports" / "nightly.md").read_text()
    assert "## flaky: failed at smoke" in md
    # the same two nights as a page (issue 32), as Chromium shows it
    assert len(list((p.root / "reports" / "history").iterdir())) == 2
    dom = check_page(p.root / "reports" / "index.html", p.root.parent, ["flaky", "good"],
                     "flaky", p.root.parent / "nightly-page.png")  # fmt: skip
    assert "greeting 2.0 is broken" in dom and "1 upgraded" in dom


def _variant(p: Project, i: int) -> None:
    """Recipe ``good`` with other solve inputs (variant 1 also adds threadpoolctl): the
    nightly builds it."""
    extra = "  - threadpoolctl\n" if i == 1 else ""
    p.write_recipe("good", TINY_RECIPE.format(name="good").replace(
        "  - python-dateutil\n", f"  - python-dateutil >=0.{i}\n{extra}"))  # fmt: skip


def _good_images() -> tuple[str, str] | None:
    """(image id of envbuild/good:current, ids of dangling images of recipe good), or None
    without an engine."""
    if not image.engine_available():
        return None
    current = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", "envbuild/good:current"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    dangling = subprocess.run(
        ["docker", "images", "-q", "--filter", "dangling=true",
         "--filter", "label=org.envbuild.recipe=good"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return current, " ".join(sorted(set(dangling.split())))


def test_quiet_night_builds_nothing(nightly_project: Project) -> None:
    p = nightly_project
    p.doit("nightly", "env=good")
    night = json.loads((p.root / "reports" / "nightly.json").read_text())[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", night["exclude_newer"])
    lock = yaml.safe_load((p.root / "locks" / "good.conda-lock.yml").read_text())
    assert lock["metadata"]["custom_metadata"]["envbuild_exclude_newer"] == night["exclude_newer"]
    assert f"| {night['exclude_newer']} |" in (p.root / "reports" / "nightly.md").read_text()
    builds = sorted((p.root / "envs" / ".builds" / "good").iterdir())
    tarball = next((p.root / "dist").glob("good-*.tar.zst"))
    stamp = tarball.stat().st_mtime_ns
    images = _good_images()
    quiet = p.doit("nightly", "env=good")
    assert "| good | unchanged |" in quiet.stdout
    assert sorted((p.root / "envs" / ".builds" / "good").iterdir()) == builds
    assert tarball.stat().st_mtime_ns == stamp
    assert _good_images() == images  # same image id, no new dangling image
    report = json.loads((p.root / "reports" / "nightly.json").read_text())
    assert report[0]["status"] == "unchanged" and 0 < report[0]["seconds"] < 60


def test_rollback_and_gc(nightly_project: Project) -> None:
    p = nightly_project
    ids = []
    for i in range(3):
        _variant(p, i)
        p.doit("_nightly_env:good")
        ids.append(_current(p, "good"))
    project = load_project(p.root)
    assert [d.name for d in complete_builds(project, "good")] == ids[1:]  # keep = 2
    assert [d.name for _, d in retired_builds(project)] == ids[:1]  # moved aside, not deleted
    tarball = next((p.root / "dist").glob("good-*.tar.zst"))
    history = {
        f.name.split(".")[0]: f for f in (p.root / "dist" / "history" / "good").glob("*.tar.*")
    }
    assert set(history) == set(ids)  # gc has not run yet
    explicit = p.root / "locks" / "good-linux-64.explicit.txt"
    assert "threadpoolctl" not in explicit.read_text()  # variant 2 is current
    proc = p.doit("rollback", "env=good")
    assert f"good: now at build {ids[1]}" in proc.stdout
    assert "/threadpoolctl-" in explicit.read_text()  # the explicit files follow the rollback
    assert _current(p, "good") == ids[1] and _imports(p, "good", "dateutil")
    assert (p.root / "locks" / "good.conda-lock.yml").read_bytes() == lock_copy(
        p.root / "envs" / "good"
    ).read_bytes()
    assert tarball.read_bytes() == history[ids[1]].read_bytes()
    stray = Path(project.path("package_cache")) / "stray-1.0-0"
    stray.mkdir(parents=True)
    (stray / "big").write_bytes(b"x" * 1_000_000)
    stray_pyc = project.path("bytecode_cache") / ("0" * 64)
    (stray_pyc / "lib").mkdir(parents=True)
    dry = p.doit("gc", "--dry-run")
    assert "dry run: nothing removed" in dry.stdout and stray.exists()
    assert f"history/good/{ids[0]}" in dry.stdout and "stray-1.0-0" in dry.stdout
    items = gc.plan(project, use_engine=False)
    assert sum(i.size for i in items) >= 1_000_000
    p.doit("gc")
    assert not stray.exists() and not history[ids[0]].exists()
    kept_keys = bytecode.keys_in_use((p.root / "envs" / "good").resolve())
    assert kept_keys and all((project.path("bytecode_cache") / k).is_dir() for k in kept_keys)
    assert not stray_pyc.exists() and retired_builds(project) == []
    assert {d.name for d in complete_builds(project, "good")} == {ids[1], ids[2]}
    assert _imports(p, "good", "dateutil")
    refused = p.doit("rollback", "env=flaky", check=False)
    assert refused.returncode != 0 and "has no earlier build to roll back to" in refused.stdout


def test_propose_mode_tests_the_candidate_and_switches_nothing(nightly_project: Project) -> None:
    p = nightly_project
    p.doit("nightly", "env=good")
    before = _current(p, "good")
    lock = p.root / "locks" / "good.conda-lock.yml"
    locked = lock.read_bytes()
    toml = p.root / "envbuild.toml"
    toml.write_text(toml.read_text() + '[nightly]\nmode = "propose"\n')
    p.write_recipe("good", TINY_RECIPE.format(name="good").replace(
        "  - python-dateutil\n", "  - python-dateutil\n  - threadpoolctl\n"))  # fmt: skip
    proc = p.doit("nightly", "env=good")
    assert "| good | proposed |" in proc.stdout
    assert _current(p, "good") == before and lock.read_bytes() == locked
    proposed = yaml.safe_load((p.root / "reports" / "good.proposed.conda-lock.yml").read_text())
    assert "threadpoolctl" in {pkg["name"] for pkg in proposed["package"]}
    diff = json.loads((p.root / "reports" / "good.lock-diff.json").read_text())
    assert any(c["name"] == "threadpoolctl" and c["kind"] == "added" for c in diff["changes"])
    builds = [d for d in (p.root / "envs" / ".builds" / "good").iterdir() if d.is_dir()]
    assert [d.name for d in builds] == [before]  # the tested candidate was not kept


def test_gc_never_removes_a_build_that_finished_while_it_planned(project: Project) -> None:
    toml = project.root / "envbuild.toml"
    toml.write_text(toml.read_text() + 'bytecode_cache = "build/own-pyc"\n')  # a slow build
    project.doit("lock")
    builds = project.root / "envs" / ".builds" / "tiny"
    running = project.popen("build")
    deadline = time.monotonic() + 120
    while not (builds.is_dir() and any(d.is_dir() for d in builds.iterdir())):
        assert time.monotonic() < deadline and running.poll() is None
        time.sleep(0.01)  # polling: the build making its directory
    p = load_project(project.root)
    items = gc.plan(p, use_engine=False)
    in_progress = [g for g in items if g.kind == "build"]
    assert in_progress and read_marker(Path(in_progress[0].what)) is None  # planned while running
    gc.collect(p, items)  # waits for the build's mutex, then re-plans under it
    assert running.wait(timeout=300) == 0
    assert Path(in_progress[0].what).is_dir() and _imports(project, "tiny", "dateutil")
