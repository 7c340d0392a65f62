"""The doit graph end to end, as a user runs it: real doit subprocesses in a temp project."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile

from envbuild.layout import read_marker
from envbuild.recipe.load import current_subdir

from ..conftest import TINY_RECIPE, Project

PLAT = current_subdir()


def test_full_chain_then_noop(project: Project) -> None:
    first = project.doit("docker")
    assert Project.executed(first) == [
        "lock:tiny",
        "build:tiny",
        "smoke:tiny",
        "pack:tiny",
        "docker:tiny",
    ]
    root = project.root
    assert (root / "locks" / "tiny.conda-lock.yml").exists()
    assert (root / "envs" / "tiny" / "bin" / "python").exists()
    assert (root / "dist" / f"tiny-{PLAT}.tar.zst").stat().st_size > 1_000_000
    dockerfile = (root / "docker" / "tiny" / "Dockerfile").read_text()
    assert "FROM debian:bookworm-slim" in dockerfile
    with tarfile.open(root / "docker" / "tiny" / "env.tar") as tf:
        assert "bin/conda-unpack" in tf.getnames()
    second = project.doit("docker")
    assert Project.executed(second) == []


def test_editing_one_recipe_reruns_only_its_chain(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project(recipes={"one": None, "two": None})
    project.doit("pack")
    # a cosmetic edit (comment) does not relock anything
    recipe = project.root / "recipes" / "two.yml"
    recipe.write_text("# just a comment\n" + recipe.read_text())
    assert Project.executed(project.doit("pack")) == []
    # a real change reruns two's chain only
    project.write_recipe(
        "two",
        TINY_RECIPE.format(name="two").replace(
            "  - python-dateutil\n", "  - python-dateutil\n  - threadpoolctl\n"
        ),
    )
    ran = Project.executed(project.doit("pack"))
    assert ran == ["lock:two", "build:two", "smoke:two", "pack:two"]


def test_env_var_selects_one_environment(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project(recipes={"one": None, "two": None})
    ran = Project.executed(project.doit("build", "env=two"))
    assert ran == ["lock:two", "build:two"]
    assert not (project.root / "envs" / "one").exists()


def test_missing_recipe_message(project: Project) -> None:
    proc = project.doit("build", "env=tiy", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "tiy.yml: no such recipe (did you mean 'tiny'?)" in out
    assert "Traceback" not in out


def test_bad_recipe_blocks_only_its_environment(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project(recipes={"good": None, "bad": "dependencies: [python, nunpy]\n"})
    proc = project.doit("build", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "bad.yml: cannot lock for" in out and "no package named 'nunpy'" in out
    assert "Traceback" not in out
    assert "build:good" in Project.executed(proc)
    assert (project.root / "envs" / "good" / "bin" / "python").exists()
    assert not (project.root / "envs" / "bad").exists()


def test_typo_key_message(project: Project) -> None:
    project.write_recipe("tiny", "dependecies: [python]\n")
    proc = project.doit("lock", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "tiny.yml: dependecies: unknown key (did you mean 'dependencies'?)" in out
    assert "Traceback" not in out


def test_smoke_failure_blocks_pack(project: Project) -> None:
    project.write_recipe(
        "tiny",
        TINY_RECIPE.format(name="tiny").replace(
            "imports: [dateutil, json]", "imports: [dateutil, not_installed_module]"
        ),
    )
    proc = project.doit("pack", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "import not_installed_module: exit code 1" in out
    assert "ModuleNotFoundError" in out
    assert "pack:tiny" not in Project.executed(proc)
    assert not (project.root / "dist").exists()


def test_lock_stale_after_dependency_change_builds_new_env(project: Project) -> None:
    project.doit("build")
    old = (project.root / "envs" / "tiny").resolve()
    project.write_recipe(
        "tiny",
        TINY_RECIPE.format(name="tiny").replace(
            "  - python-dateutil\n", "  - python-dateutil\n  - threadpoolctl\n"
        ),
    )
    assert Project.executed(project.doit("build")) == ["lock:tiny", "build:tiny"]
    new = (project.root / "envs" / "tiny").resolve()
    assert new != old
    assert (new / "lib" / "python3.11" / "site-packages" / "threadpoolctl.py").exists()


def test_deleted_environment_is_rebuilt(project: Project) -> None:
    project.doit("build")
    (project.root / "envs" / "tiny").unlink()
    assert Project.executed(project.doit("build")) == ["build:tiny"]
    assert (project.root / "envs" / "tiny" / "bin" / "python").exists()


def test_noop_imports_no_conda_lock_pydantic_or_rattler(project: Project) -> None:
    """Deciding that nothing is to be done reads small stamps only (issue 9)."""
    project.doit("pack")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "doit", "pack"],
        cwd=project.root,
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert project.executed(proc) == []
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if "|" in ln}
    assert "doit" in imported and "envbuild.stages.build" in imported  # the probe itself works
    heavy = {m for m in imported if m.split(".")[0] in ("conda_lock", "pydantic", "rattler")}
    assert heavy == set()
    # the offline channel's up-to-date inputs are computed only when that task is checked
    assert not {m for m in imported if m.split(".")[0] == "whl2conda"}


def test_status_reports_every_stage_without_heavy_imports(project: Project) -> None:
    project.doit("pack")
    project.doit("verify")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "doit", "status", "--json"],
        cwd=project.root, env=project.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if "|" in ln}
    assert "envbuild.ops.status" in imported
    assert not {m for m in imported if m.split(".")[0] in ("conda_lock", "pydantic", "rattler")}
    rows = json.loads(proc.stdout[proc.stdout.index("[") :])
    (row,) = rows
    build_id = read_marker(project.root / "envs" / "tiny").build_id  # type: ignore[union-attr]
    assert row["recipe"] == "tiny" and row["lock"] == "fresh"
    assert row["lock_platforms"] == ["linux-64"] and row["build_id"] == build_id
    assert row["smoke"] == "passed" and row["verify"] == "clean"
    assert row["tarball_build"] == build_id and row["build_bytes"] > 10_000_000
    table = project.doit("status").stdout
    assert "tiny" in table and "(current)" in table and "fresh" in table


def test_doit_list_info_and_clean_as_doit_users_expect(make_project) -> None:  # type: ignore[no-untyped-def]
    p = make_project(recipes={"tiny": None, "other": TINY_RECIPE.format(name="other")})
    listed = p.doit("list").stdout
    assert "nightly " in listed and "_nightly_env" not in listed  # internal tasks hidden
    assert re.search(r"build:tiny +build of environment 'tiny'", p.doit("list", "--all").stdout)
    assert "update=PKG" in p.doit("help", "lock").stdout
    p.doit("pack")
    assert "status     : up-to-date" in p.doit("info", "build:tiny").stdout
    (p.root / "envs" / "tiny").unlink()
    info = p.doit("info", "build:tiny", check=False)  # doit info exits 1 for a task to run
    why = info.stdout
    assert (
        info.returncode == 1
        and "status     : run" in why
        and "envbuild.stages.build.build_is_current('tiny')" in why
    )
    p.doit("build")
    p.doit("clean", "pack:tiny")
    assert not list((p.root / "dist").glob("tiny-*")) and list((p.root / "dist").glob("other-*"))
    p.doit("clean", "build:tiny")
    assert not (p.root / "envs" / "tiny").exists()
    assert read_marker(p.root / "envs" / "other") is not None  # never another environment's
    assert (p.root / "locks" / "tiny.conda-lock.yml").exists()  # lockfiles are sources
    assert Project.executed(p.doit("build")) == ["build:tiny"]
