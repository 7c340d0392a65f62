"""Faults caused for real: broken downloads, corrupted caches, concurrent builds, kill -9
(and, injected, the one a local channel cannot cause: an install attempt that breaks)."""

from __future__ import annotations

import random
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from envbuild.install import build, bytecode
from envbuild.install.build import read_marker
from envbuild.lock.lockfile import read_lockfile
from envbuild.prefix import verify
from envbuild.project import load_project
from envbuild.rattler import client as rattler_client
from envbuild.recipe.load import load_recipe
from envbuild.recipe.model import current_subdir
from envbuild.ship.pack import PROVE_PREFIX, open_tar_stream
from envbuild.util.fs import clean_ram_scratch, file_sha256

from ..conftest import TINY_RECIPE, Project, imports_ok, kill_after
from ..support.httpchannel import Faults, serve

TWO = TINY_RECIPE.format(name="tiny").replace(
    "  - python-dateutil\n", "  - python-dateutil\n  - threadpoolctl\n"
)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVBUILD_RETRY_BACKOFF", "0.05")


@pytest.fixture
def own_channel(channel: Path, tmp_path: Path) -> Path:
    own = tmp_path / "served" / "chan"
    shutil.copytree(channel, own)
    return own


def _http_project(make_project, tmp_path: Path, url: str) -> Project:  # type: ignore[no-untyped-def]
    project = make_project()
    (project.root / "envbuild.toml").write_text(
        f'[mirrors]\nconda-forge = "{url}/chan"\n[paths]\npackage_cache = "{tmp_path / "pkgs"}"\n'
    )
    return project


def test_cut_off_downloads_are_retried(
    make_project, own_channel: Path, tmp_path: Path, fast_retries: None
) -> None:  # type: ignore[no-untyped-def]
    faults = Faults(truncate=6)
    with serve(own_channel.parent, faults) as url:
        project = _http_project(make_project, tmp_path, url)
        project.doit("build")
    assert faults.truncate == 0
    assert sum(r.endswith(".conda") for r in faults.requests) > 3
    assert imports_ok(project.root / "envs" / "tiny")


def test_install_retry_links_kept_bytecode_again(
    project: Project, fast_retries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept bytecode is linked while the worker installs the packages; a retried install
    starts again from an empty prefix (after that linking finished), so the bytecode is
    linked again and every file the records list is there. The broken connection is
    injected (the one fault here that a local channel cannot cause for real: py-rattler
    retries cut-off downloads itself)."""
    project.doit("build")  # compiles and keeps the bytecode
    real = rattler_client.call
    failed: list[str] = []

    def first_install_breaks(op: str, req: dict[str, Any], **kw: Any) -> Any:
        if op == "install" and not failed:
            failed.append(op)
            broken = "error sending request: connection reset by peer"
            raise rattler_client.RattlerCallError(
                rattler_client.WorkerFailure(
                    "FetchRepoDataError", broken, kind=rattler_client.FailureKind.NETWORK
                )
            )
        return real(op, req, **kw)

    monkeypatch.setattr(rattler_client, "call", first_install_breaks)
    p = load_project(project.root)
    recipe = load_recipe(p.recipe_file("tiny"))
    prefix, _ = build.install_build(recipe, p, p.lockfile("tiny"))
    assert failed == ["install"]
    assert bytecode.keys_in_use(prefix)  # linked from the kept bytecode, recorded
    lock = read_lockfile(p.lockfile("tiny"))
    assert verify.verify_prefix(prefix, lock, current_subdir(), str(prefix)) == []


def test_channel_that_keeps_failing_gives_a_clear_error(
    make_project, own_channel: Path, tmp_path: Path, fast_retries: None
) -> None:  # type: ignore[no-untyped-def]
    faults = Faults()
    with serve(own_channel.parent, faults) as url:
        project = _http_project(make_project, tmp_path, url)
        project.doit("build")
        before = (project.root / "envs" / "tiny").resolve()
        project.write_recipe("tiny", TWO)
        project.doit("lock")
        faults.truncate = 10_000
        proc = project.doit("build", check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "failed after 4 attempts" in out and "failed to fetch threadpoolctl" in out
        assert "retrying in" in out and "Traceback" not in out
        assert (project.root / "envs" / "tiny").resolve() == before and imports_ok(before)
        faults.truncate = 0  # the channel recovers: nothing partial was kept
        project.doit("build")
        project.doit("verify")
    assert imports_ok(project.root / "envs" / "tiny", "threadpoolctl")


def test_corrupted_cache_entry_is_detected_and_reextracted(make_project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = make_project()
    cache = tmp_path / "own-pkgs"
    toml = project.root / "envbuild.toml"
    toml.write_text(toml.read_text().split("[paths]")[0] + f'[paths]\npackage_cache = "{cache}"\n')
    project.doit("build")
    parser = next(cache.glob("python-dateutil-*/site-packages/dateutil/parser/_parser.py"))
    size = parser.stat().st_size
    parser.write_bytes(parser.read_bytes()[: size // 3])  # truncated
    tz = next(cache.glob("python-dateutil-*/site-packages/dateutil/tz/tz.py"))
    tz.write_text(tz.read_text().replace("def ", "def  ", 1))  # altered, same purpose
    (project.root / "envs" / "tiny").unlink()
    project.doit("build")
    project.doit("verify")  # the new environment got intact files
    assert parser.stat().st_size == size  # and the cache entry was re-extracted


def test_corrupted_archive_fails_naming_the_package(
    make_project, own_channel: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    project = make_project(mirror=str(own_channel))
    toml = project.root / "envbuild.toml"
    toml.write_text(
        toml.read_text().split("[paths]")[0] + f'[paths]\npackage_cache = "{tmp_path / "fresh"}"\n'
    )
    project.doit("lock")
    archive = next(own_channel.glob("noarch/python-dateutil-*.conda"))
    locked = file_sha256(archive)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    proc = project.doit("build", check=False)
    assert proc.returncode != 0
    assert (
        f"python-dateutil: https://conda.anaconda.org/conda-forge/noarch/{archive.name}"
        in proc.stdout
    )
    assert f"fetched from {archive.as_uri()}" in proc.stdout
    assert f"expected sha256 {locked}" in proc.stdout
    assert f"actual   sha256 {file_sha256(archive)}" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (project.root / "envs" / "tiny").exists()


def test_two_builds_of_one_environment_at_once(project: Project) -> None:
    project.doit("lock")
    procs = [project.popen("build", output=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert any("waiting for another build of environment 'tiny'" in err for _, err in outs)
    project.doit("verify")
    builds = [d for d in (project.root / "envs" / ".builds" / "tiny").iterdir() if d.is_dir()]
    assert all(read_marker(d) is not None for d in builds)


def test_two_environments_sharing_a_cache_build_at_once(make_project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = make_project(recipes={"one": None, "two": TWO.replace("name: tiny", "name: two")})
    toml = project.root / "envbuild.toml"
    toml.write_text(
        toml.read_text().split("[paths]")[0]
        + f'[paths]\npackage_cache = "{tmp_path / "shared-pkgs"}"\n'
    )
    project.doit("lock")
    procs = [
        project.popen("build", "env=one", output=True),
        project.popen("build", "env=two", output=True),
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    project.doit("verify")


def _tarball_ok(path: Path) -> bool:
    try:
        with open_tar_stream(path) as stream, tarfile.open(fileobj=stream, mode="r|*") as tf:
            names = [m.name for m in tf]
    except Exception:
        return False
    return "bin/python" in names


@pytest.mark.serial  # looks at all of /dev/shm: no other test may pack meanwhile
@pytest.mark.slow
def test_kill_9_at_random_moments_during_build_and_pack(project: Project) -> None:
    """Alternate two recipes so every run has a full chain to do, and kill -9 the whole
    process group at a random moment; the environment and tarball must stay usable."""
    rng = random.Random(20261121)
    project.doit("pack")
    tarball = next((project.root / "dist").glob("tiny-*.tar.zst"))
    # how long a whole chain (lock, build, smoke, pack) takes here, so the kills land in runs
    project.write_recipe("tiny", TWO)
    start = time.monotonic()
    project.doit("pack")
    chain = time.monotonic() - start
    kills = broken = 0
    for i in range(24):
        project.write_recipe("tiny", TINY_RECIPE.format(name="tiny") if i % 2 == 0 else TWO)
        kills += kill_after(project.popen("pack"), rng.uniform(0.05, 0.95) * chain)
        current = (project.root / "envs" / "tiny").resolve()
        if read_marker(current) is None or not imports_ok(current) or not _tarball_ok(tarball):
            broken += 1
    assert kills >= 12, f"only {kills} runs were still going when the kill came"
    assert broken == 0
    project.doit("pack")  # the next run completes and cleans up
    leftovers = [p.name for p in (project.root / "dist").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    builds = project.root / "envs" / ".builds" / "tiny"
    assert all(read_marker(d) is not None for d in builds.iterdir() if d.is_dir())
    # the proof's copies of killed runs (in /dev/shm) went with that next run
    assert clean_ram_scratch(PROVE_PREFIX) == []
    assert not list(builds.glob("*.partial"))
    print(f"kill -9 points exercised: {kills}, broken environments or tarballs: {broken}")
