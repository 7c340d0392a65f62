"""Build stage: exact installs from the lock, staged prefixes, failures and interrupts."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from envbuild.install.build import read_marker

from ..conftest import TINY_RECIPE, Project, imports_ok, kill_after

WITH_THREADPOOLCTL = TINY_RECIPE.format(name="tiny").replace(
    "  - python-dateutil\n", "  - python-dateutil\n  - threadpoolctl\n"
)


def builds(project: Project) -> list[Path]:
    return sorted(p for p in (project.root / "envs" / ".builds" / "tiny").iterdir() if p.is_dir())


def test_build_installs_exactly_the_lock(project: Project) -> None:
    project.doit("build")
    prefix = project.root / "envs" / "tiny"
    meta = {p.name.rsplit("-", 2)[0] for p in (prefix / "conda-meta").glob("*.json")}
    lock = (project.root / "locks" / "tiny.conda-lock.yml").read_text()
    assert meta == {"python", "python-dateutil", "python-tzdata"}
    assert all(f"name: {m}" in lock for m in meta)
    assert imports_ok(prefix)
    info = read_marker(prefix)
    assert info is not None and info.packages == 3


def test_failed_build_keeps_previous_environment(built_own: tuple[Project, Path]) -> None:
    project, own_channel = built_own
    before = (project.root / "envs" / "tiny").resolve()
    project.write_recipe("tiny", WITH_THREADPOOLCTL)
    project.doit("lock")
    for pkg in own_channel.glob("noarch/threadpoolctl-*.conda"):
        pkg.unlink()  # the locked file is gone from the channel: the install must fail
    proc = project.doit("build", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "installing the locked packages" in out and "threadpoolctl" in out
    assert "Traceback" not in out
    assert (project.root / "envs" / "tiny").resolve() == before
    assert imports_ok(before)
    assert builds(project) == [before]  # the half-built prefix was removed


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_builds_leave_previous_environment(
    project: Project, sig: signal.Signals
) -> None:
    project.doit("build")
    good = (project.root / "envs" / "tiny").resolve()
    project.write_recipe("tiny", WITH_THREADPOOLCTL)
    project.doit("lock")
    for delay in (0.3, 0.6, 0.9, 1.2, 1.5, 2.0):
        kill_after(project.popen("build"), delay, sig)
        current = (project.root / "envs" / "tiny").resolve()
        assert read_marker(current) is not None, f"incomplete env current after {delay}s"
        assert imports_ok(current), f"env broken after kill at {delay}s"
        if current != good:
            assert imports_ok(current, "threadpoolctl")
            break  # the new build finished before the kill: nothing more to interrupt
    project.doit("build")
    final = (project.root / "envs" / "tiny").resolve()
    assert imports_ok(final, "threadpoolctl")
    leftovers = [b for b in builds(project) if read_marker(b) is None]
    assert leftovers == []


def test_stale_lock_is_refused(project: Project) -> None:
    project.doit("lock")
    project.write_recipe("tiny", WITH_THREADPOOLCTL)
    from envbuild.errors import BuildError
    from envbuild.install.build import build_env
    from envbuild.project import load_project
    from envbuild.recipe.load import load_recipe

    p = load_project(project.root)
    with pytest.raises(BuildError, match=r"tiny\.conda-lock\.yml is stale"):
        build_env(load_recipe(p.recipe_file("tiny")), p)


def test_builds_beyond_keep_are_moved_aside_then_deleted_by_the_next_build(
    project: Project,
) -> None:
    toml = project.root / "envbuild.toml"
    toml.write_text(toml.read_text() + "[builds]\nkeep = 2\n")
    builds = project.root / "envs" / ".builds" / "tiny"
    trash = project.root / "envs" / ".builds" / ".tiny.trash"
    ids = []
    for i in range(4):  # each a new lock, so each build is a switch from the previous one
        project.write_recipe("tiny", TINY_RECIPE.format(name="tiny").replace(
            "  - python-dateutil\n", f"  - python-dateutil >=0.{i}\n"))  # fmt: skip
        project.doit("build")
        ids.append((project.root / "envs" / "tiny").resolve().name)
        # keep = 2: current + rollback; the one before was moved aside by this build's switch
        assert sorted(d.name for d in builds.iterdir() if d.is_dir()) == sorted(ids[-2:])
        aside = sorted(d.name for d in trash.iterdir()) if trash.is_dir() else []
        # ...and the one moved aside by the previous switch was deleted during this build
        assert aside == ids[-3:-2]
        assert imports_ok(project.root / "envs" / "tiny")
    assert all(not (builds / f"{i}.json").exists() for i in ids[:2])  # markers went at once
    dry = project.doit("gc", "--dry-run")
    assert "retired" in dry.stdout and f".tiny.trash/{ids[1]}" in dry.stdout
    project.doit("gc")
    assert not any(trash.iterdir())
    assert sorted(d.name for d in builds.iterdir() if d.is_dir()) == sorted(ids[-2:])
