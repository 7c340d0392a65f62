"""Issue 8: a lockfile is a contract that holds on every machine: portable (canonical channels,
no machine paths, stable platforms), hash-enforced (whatever the URL scheme and the package
cache hold), and bad input gives a message, never a traceback or a half-built environment."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from envbuild.errors import LockError
from envbuild.rattler import client as rattler_client
from envbuild.util.fs import file_sha256

from ..conftest import REPO, Project, imports_ok
from ..support.fakechannel import write_package
from ..support.httpchannel import Faults, serve


def clone(root: Path, channel: Path, cache: Path) -> Project:
    """A project laid out like this repository: the channel inside the clone, mirrored by a
    relative path, so two clones differ in every absolute path."""
    (root / "recipes").mkdir(parents=True)
    shutil.copytree(channel, root / "mirror" / "conda-forge")
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    (root / "envbuild.toml").write_text(
        textwrap.dedent(f"""\
        [mirrors]
        conda-forge = "mirror/conda-forge"
        [paths]
        package_cache = "{cache}"
        """)
    )
    project = Project(root)
    project.write_recipe("tiny")
    return project


def test_two_clones_lock_byte_identical_and_share_locks(channel: Path, tmp_path: Path) -> None:
    a = clone(tmp_path / "alice" / "work" / "proj", channel, tmp_path / "cache-a")
    b = clone(tmp_path / "bob" / "proj", channel, tmp_path / "cache-b")
    a.doit("lock")
    b.doit("lock")
    locks = [p.root / "locks" / "tiny.conda-lock.yml" for p in (a, b)]
    assert locks[0].read_bytes() == locks[1].read_bytes()
    for p in (a, b):
        for f in (p.root / "locks").iterdir():
            text = f.read_text()
            assert str(tmp_path) not in text and "file://" not in text, f
    # a third clone takes alice's committed lock: up to date there, and it builds from it
    c = clone(tmp_path / "carol" / "proj", channel, tmp_path / "cache-c")
    shutil.copytree(a.root / "locks", c.root / "locks")
    c.doit("check")
    proc = c.doit("build")
    assert c.executed(proc) == ["build:tiny"]
    assert imports_ok(c.root / "envs" / "tiny")
    assert (c.root / "locks" / "tiny.conda-lock.yml").read_bytes() == locks[0].read_bytes()


def test_recipe_without_platforms_locks_for_the_project_default(make_project) -> None:  # type: ignore[no-untyped-def]
    project = make_project()
    toml = project.root / "envbuild.toml"
    toml.write_text(toml.read_text() + '[lock]\nplatforms = ["linux-64"]\n')
    project.doit("lock")
    doc = yaml.safe_load((project.root / "locks" / "tiny.conda-lock.yml").read_text())
    assert doc["metadata"]["platforms"] == ["linux-64"]
    toml.write_text(toml.read_text().replace('["linux-64"]', '["linux-64", "osx-arm64"]'))
    proc = project.doit("check", check=False)
    assert proc.returncode != 0
    assert "is locked for linux-64 but the recipe now lists linux-64, osx-arm64" in proc.stdout


def test_specs_for_one_package_combine_and_extends_replaces(project: Project) -> None:
    from envbuild.lock import solve as lock
    from envbuild.project import load_project
    from envbuild.recipe.load import load_recipe

    p = load_project(project.root)
    project.write_recipe("both", "dependencies: ['python >=3.10', 'python <3.11']\n")
    recipe = load_recipe(p.recipe_file("both"))
    assert recipe.dependencies == ("python >=3.10", "python <3.11")
    with pytest.raises(LockError, match="python"):  # our python is 3.11.7: <3.11 still applies
        lock.lock_recipe(recipe, p)
    project.write_recipe("ok", "dependencies: ['python >=3.10', 'python <3.13']\n")
    result = lock.lock_recipe(load_recipe(p.recipe_file("ok")), p)
    assert "version: 3.11.7" in result.path.read_text()
    project.write_recipe("child", "extends: both\ndependencies: ['python 3.11.*']\n")
    child = load_recipe(p.recipe_file("child"))
    assert child.dependencies == ("python 3.11.*",)
    lock.lock_recipe(child, p)


def _previous_env_intact(project: Project, before: Path) -> None:
    assert (project.root / "envs" / "tiny").resolve() == before
    assert imports_ok(before)


def test_edited_hash_in_lock_with_warm_cache_is_refused(built_own: tuple[Project, Path]) -> None:
    project, _ = built_own
    before = (project.root / "envs" / "tiny").resolve()
    lock = project.root / "locks" / "tiny.conda-lock.yml"
    doc = lock.read_text()
    pkg = next(p for p in yaml.safe_load(doc)["package"] if p["name"] == "python-dateutil")
    forged = "f" * 64
    lock.write_text(doc.replace(pkg["hash"]["sha256"], forged))
    proc = project.doit("build", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert f"python-dateutil: {pkg['url']}" in proc.stdout
    assert f"expected sha256 {forged}" in proc.stdout
    assert f"actual   sha256 {pkg['hash']['sha256']}" in proc.stdout
    _previous_env_intact(project, before)


def test_another_archive_of_the_same_file_name_is_not_served_from_cache(
    built_own: tuple[Project, Path],
) -> None:
    """The channel re-publishes python-dateutil under the same file name with other content;
    after a relock the build installs the new archive, not the cache entry of the old one."""
    project, own_channel = built_own
    old = next(own_channel.glob("noarch/python-dateutil-*.conda"))
    name, version, build = old.name.removesuffix(".conda").rsplit("-", 2)
    old.unlink()
    new = write_package(
        own_channel,
        "noarch",
        {
            "name": name,
            "version": version,
            "build": build,
            "build_number": 0,
            "depends": [],
            "subdir": "noarch",
            "noarch": "generic",
        },
        {"share/republished.txt": b"second upload\n"},
    )
    rattler_client.call("index", {"channel_dir": str(own_channel)})
    project.doit("--always-execute", "lock")  # the recipe did not change: force the relock
    project.doit("build")
    prefix = project.root / "envs" / "tiny"
    assert (prefix / "share" / "republished.txt").read_text() == "second upload\n"
    meta = next((prefix / "conda-meta").glob("python-dateutil-*.json")).read_text()
    assert file_sha256(new) in meta


def test_tampered_archive_over_http_is_refused(
    built_own: tuple[Project, Path], tmp_path: Path
) -> None:
    project, own_channel = built_own
    before = (project.root / "envs" / "tiny").resolve()
    archive = next(own_channel.glob("noarch/python-dateutil-*.conda"))
    locked = file_sha256(archive)
    archive.write_bytes(archive.read_bytes() + b"\0" * 64)  # still unpacks, other sha256
    with serve(own_channel.parent, Faults()) as url:
        (project.root / "envbuild.toml").write_text(
            f'[mirrors]\nconda-forge = "{url}/{own_channel.name}"\n'
            f'[paths]\npackage_cache = "{tmp_path / "fresh-cache"}"\n'
        )
        proc = project.doit("--always-execute", "build:tiny", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert f"fetched from {url}/{own_channel.name}/noarch/{archive.name}" in proc.stdout
    assert f"expected sha256 {locked}" in proc.stdout
    assert "after" not in proc.stdout.split("refusing")[0]  # not retried as a network error
    _previous_env_intact(project, before)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("version: 1\n", "version: 1\n  - [\n"), "not a valid conda-lock file"),
        (
            lambda t: t.replace(
                "https://conda.anaconda.org/conda-forge/noarch/python-dateutil",
                "https://evil.example/conda-forge/noarch/python-dateutil",
            ),
            "package python-dateutil (linux-64) has url https://evil.example/",
        ),
    ],
    ids=["yaml-syntax", "url"],
)
def test_hand_edited_lockfile_gives_a_message(
    built_own: tuple[Project, Path], edit, expected: str
) -> None:  # type: ignore[no-untyped-def]
    project, _ = built_own
    before = (project.root / "envs" / "tiny").resolve()
    lock = project.root / "locks" / "tiny.conda-lock.yml"
    broken = edit(lock.read_text())
    lock.write_text(broken)
    proc = project.doit("build", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert expected in proc.stdout and "locks/tiny.conda-lock.yml" in proc.stdout
    assert lock.read_text() == broken  # never silently re-solved over the user's file
    _previous_env_intact(project, before)


def test_unreachable_mirror_at_build_names_it(
    built_own: tuple[Project, Path], tmp_path: Path
) -> None:
    project, own_channel = built_own
    before = (project.root / "envs" / "tiny").resolve()
    shutil.rmtree(tmp_path / "pkgs")
    shutil.move(own_channel, tmp_path / "moved-away")
    proc = project.doit("--always-execute", "build:tiny", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert "channel 'conda-forge' is mirrored to" in proc.stdout
    _previous_env_intact(project, before)


def test_an_unusable_build_lock_is_a_message(project: Project) -> None:
    project.doit("lock")
    lock_file = project.root / "envs" / ".builds" / ".tiny.lock"
    lock_file.parent.mkdir(parents=True)
    os.symlink("/dev/full", lock_file)  # filelock refuses to follow it (O_NOFOLLOW), for real
    proc = project.doit("build", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert f"{lock_file}: cannot take the lock for the build of environment 'tiny'" in proc.stdout
    assert "Too many levels of symbolic links" in proc.stdout and "plain file" in proc.stdout
    assert not (project.root / "envs" / "tiny").exists()


def test_exclude_newer_limits_the_solve_and_is_recorded(project: Project) -> None:
    """python-dateutil in the test channel was published now; python carries no timestamp."""
    from envbuild.lock import solve as lock
    from envbuild.project import load_project
    from envbuild.recipe.load import load_recipe

    p = load_project(project.root)
    project.write_recipe(
        "old", "dependencies: [python, python-dateutil]\nexclude-newer: 2000-01-01\n"
    )
    with pytest.raises(LockError, match="python-dateutil"):
        lock.lock_recipe(load_recipe(p.recipe_file("old")), p)
    project.write_recipe(
        "new", "dependencies: [python, python-dateutil]\nexclude-newer: 2100-01-01\n"
    )
    new = load_recipe(p.recipe_file("new"))
    result = lock.lock_recipe(new, p)
    meta = yaml.safe_load(result.path.read_text())["metadata"]["custom_metadata"]
    assert meta["envbuild_exclude_newer"] == "2100-01-01T00:00:00Z"
    project.write_recipe("new", "dependencies: [python, python-dateutil]\n")
    assert lock.fingerprint(load_recipe(p.recipe_file("new")), p) != lock.fingerprint(new, p)
