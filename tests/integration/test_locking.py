"""Issue 3: multi-platform locks, virtual packages, update=, diffs, conflicts, layers, check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from envbuild.errors import LockError
from envbuild.lock import solve as lock
from envbuild.project import load_project
from envbuild.recipe.load import load_recipe

from ..conftest import Project
from ..support.fakechannel import PLATFORMS, add_newer_versions, multi_platform_channel


@pytest.fixture(scope="session")
def fake_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return multi_platform_channel(tmp_path_factory.mktemp("fake") / "channel")


@pytest.fixture
def fake(make_project, fake_channel: Path, tmp_path: Path) -> Project:  # type: ignore[no-untyped-def]
    own = tmp_path / "fake-channel"
    shutil.copytree(fake_channel, own)
    return make_project(mirror=str(own), recipes={})


def _lock(project: Project, name: str, update: tuple[str, ...] = ()) -> lock.LockResult:
    p = load_project(project.root)
    return lock.lock_recipe(load_recipe(p.recipe_file(name)), p, update)


def _versions(path: Path, platform: str) -> dict[str, str]:
    doc = yaml.safe_load(path.read_text())
    return {p["name"]: p["version"] for p in doc["package"] if p["platform"] == platform}


ALL = "platforms: [" + ", ".join(PLATFORMS) + "]\n"


def test_one_lockfile_for_five_platforms_with_explicit_files(fake: Project) -> None:
    fake.write_recipe("multi", ALL + "dependencies: ['python 3.11.*', beta]\n")
    result = _lock(fake, "multi")
    doc = yaml.safe_load(result.path.read_text())
    assert sorted(doc["metadata"]["platforms"]) == sorted(PLATFORMS)
    for plat in PLATFORMS:
        assert _versions(result.path, plat) == {"python": "3.11.7", "alpha": "1.0", "beta": "1.0"}
        explicit = (fake.root / "locks" / f"multi-{plat}.explicit.txt").read_text()
        assert "@EXPLICIT" in explicit
        assert (
            sum(
                ln.startswith("https://conda.anaconda.org/conda-forge/") and "#" in ln
                for ln in explicit.splitlines()
            )
            == 3
        )


def test_missing_virtual_package_is_explained_and_override_fixes_it(fake: Project) -> None:
    fake.write_recipe("gpu", "platforms: [linux-64]\ndependencies: [gpukernel]\n")
    with pytest.raises(LockError) as e:
        _lock(fake, "gpu")
    assert "`gpukernel` needs the virtual package __cuda" in str(e.value)
    assert "virtual_packages: {__cuda:" in str(e.value)
    fake.write_recipe(
        "gpu",
        "platforms: [linux-64, win-64]\ndependencies: [gpukernel]\n"
        "virtual_packages: {__cuda: '12.2'}\n",
    )
    assert _versions(_lock(fake, "gpu").path, "win-64") == {"gpukernel": "1.0"}


def test_platform_without_build_is_explained(fake: Project) -> None:
    fake.write_recipe("lin", "platforms: [linux-64, osx-arm64]\ndependencies: [linuxonly]\n")
    with pytest.raises(
        LockError, match=r"'linuxonly' has no build for osx-arm64 .*exists for linux-64"
    ):
        _lock(fake, "lin")


def test_conflicting_pins_name_both_lines_and_why(fake: Project) -> None:
    fake.write_recipe("c", "platforms: [linux-64]\ndependencies: ['numbers <1.20', 'frame 2.*']\n")
    with pytest.raises(LockError) as e:
        _lock(fake, "c")
    assert (
        "c.yml: `numbers <1.20` conflicts with `frame 2.*` (every frame matching `frame 2.*` "
        "needs numbers >=1.22.4)"
    ) in str(e.value)
    assert "solver explanation:" in str(e.value)


def test_no_version_matches_lists_available(fake: Project) -> None:
    fake.write_recipe("v", "platforms: [linux-64]\ndependencies: ['numbers >=9']\n")
    with pytest.raises(LockError, match=r"no version of 'numbers'.*available: 1\.19\.5, 1\.23\.0"):
        _lock(fake, "v")


def test_update_one_package_keeps_others_pinned_and_reports_diff(fake: Project) -> None:
    fake.write_recipe("u", "platforms: [linux-64]\ndependencies: [beta]\n")
    first = _lock(fake, "u")
    assert _versions(first.path, "linux-64") == {"alpha": "1.0", "beta": "1.0"}
    channel = Path(load_project(fake.root).mirrors["conda-forge"])
    add_newer_versions(channel)
    updated = _lock(fake, "u", update=("alpha",))
    assert _versions(updated.path, "linux-64") == {"alpha": "2.0", "beta": "1.0"}
    report = json.loads((fake.root / "reports" / "u.lock-diff.json").read_text())
    assert report["changes"] == [
        {
            "platform": "linux-64",
            "manager": "conda",
            "name": "alpha",
            "kind": "upgraded",
            "old": "1.0 0",
            "new": "2.0 0",
        }
    ]
    md = (fake.root / "reports" / "u.lock-diff.md").read_text()
    assert "| upgraded | alpha | 1.0 0 | 2.0 0 |" in md
    # a plain relock is a fresh solve: the old lock does not hold beta back
    fresh = _lock(fake, "u")
    assert _versions(fresh.path, "linux-64") == {"alpha": "2.0", "beta": "1.1"}
    assert [c.kind for c in fresh.changes] == ["upgraded"]


def test_layered_recipe_merges_and_child_pins_win(fake: Project) -> None:
    fake.write_recipe(
        "base",
        "platforms: [linux-64]\ndependencies: ['python 3.11.*', "
        "'numbers >=1']\nsmoke: {imports: [json]}\n",
    )
    fake.write_recipe(
        "child", "extends: base\ndependencies: ['numbers <1.20', beta]\nsmoke: {imports: [os]}\n"
    )
    r = load_recipe(fake.root / "recipes" / "child.yml")
    assert r.dependencies == ("python 3.11.*", "numbers <1.20", "beta")
    assert r.platforms == ("linux-64",) and r.smoke.imports == ("json", "os")
    assert r.origin("python").endswith("base.yml") and r.origin("numbers").endswith("child.yml")
    assert _versions(_lock(fake, "child").path, "linux-64")["numbers"] == "1.19.5"


def test_conflict_names_the_parent_recipe(fake: Project) -> None:
    fake.write_recipe("base", "platforms: [linux-64]\ndependencies: ['frame 2.*']\n")
    fake.write_recipe("child", "extends: [base]\ndependencies: ['numbers <1.20']\n")
    with pytest.raises(
        LockError,
        match=r"base\.yml: `frame 2\.\*` conflicts with "
        r"`numbers <1.20` \(from .*child\.yml\) \(every frame matching",
    ):
        _lock(fake, "child")


def test_changing_parent_relocks_children_only(fake: Project) -> None:
    fake.write_recipe("base", "platforms: [linux-64]\ndependencies: [alpha]\n")
    fake.write_recipe("child", "extends: base\ndependencies: [beta]\n")
    fake.write_recipe("other", "platforms: [linux-64]\ndependencies: [numbers]\n")
    fake.doit("lock")
    fake.write_recipe("base", "platforms: [linux-64]\ndependencies: [alpha, 'numbers <1.20']\n")
    assert sorted(Project.executed(fake.doit("lock"))) == ["lock:base", "lock:child"]


def test_check_lists_stale_without_solving(fake: Project) -> None:
    fake.write_recipe("a", "platforms: [linux-64]\ndependencies: [alpha]\n")
    fake.write_recipe("b", "platforms: [linux-64]\ndependencies: [beta]\n")
    fake.doit("lock")
    shutil.rmtree(Path(load_project(fake.root).mirrors["conda-forge"]))  # no channel at all
    ok = fake.doit("check")
    assert "a: up to date" in ok.stdout and "b: up to date" in ok.stdout
    fake.write_recipe("b", "# cosmetic\nplatforms: [linux-64]\ndependencies: [beta]\n")
    assert fake.doit("check", check=False).returncode == 0
    fake.write_recipe("b", "platforms: [linux-64]\ndependencies: ['beta >=1']\n")
    stale = fake.doit("check", check=False)
    assert stale.returncode != 0
    assert "b: STALE" in stale.stdout and "a: up to date" in stale.stdout


def test_doit_lock_update_var(fake: Project) -> None:
    fake.write_recipe("u", "platforms: [linux-64]\ndependencies: [beta]\n")
    fake.doit("lock")
    add_newer_versions(Path(load_project(fake.root).mirrors["conda-forge"]))
    assert Project.executed(fake.doit("lock")) == []  # recipe unchanged: no relock
    proc = fake.doit("lock", "env=u", "update=alpha")
    assert Project.executed(proc) == ["lock:u"]
    assert "| upgraded | alpha | 1.0 0 | 2.0 0 |" in proc.stderr
    lockfile = fake.root / "locks" / "u.conda-lock.yml"
    assert _versions(lockfile, "linux-64") == {"alpha": "2.0", "beta": "1.0"}
