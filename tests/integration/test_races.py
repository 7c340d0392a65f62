"""Issue 20: the five published artifacts (environment, lockfile, explicit files, tarball,
image tag) under races with real processes, kill -9 in the windows nobody named, a shared
Docker engine and a full disk. After each, the five describe one build and nothing
(candidate, temporary, image) is left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envbuild.install.build import read_marker
from envbuild.ship.engine import project_id
from envbuild.util.kill_points import armed

from ..conftest import Project
from .test_promotion import NAME, _docker, _greeting, _publish, _published, greet

__all__ = ["greet"]  # the fixture, shared with test_promotion

SLOW_SMOKE = """\
dependencies: ['python 3.11.*', greeting]
smoke:
  imports: [greeting]
  commands: ["python -c 'import time; time.sleep(8)'"]  # sleep: a smoke test slow enough to race
"""


def _builds(p: Project) -> list[str]:
    root = p.root / "envs" / ".builds" / NAME
    return sorted(d.name for d in root.iterdir() if d.is_dir())


def _images_of(p: Project, build_id: str) -> list[str]:
    """Ids of every image (tagged or not) labelled with ``build_id``."""
    out = _docker(
        "images", "-aq", "--no-trunc", "--filter", f"label=org.envbuild.build-id={build_id}"
    )
    return out.split()


def _nothing_left(p: Project, discarded: tuple[str, ...] = ()) -> None:
    """No candidate, journal or temporary left; kept tarballs are those of kept builds;
    no image of a discarded build."""
    root = p.root
    assert not (root / "build" / "state" / "candidate" / NAME).exists()
    assert not (root / "build" / "state" / f"{NAME}.promotion.json").exists()
    builds = set(_builds(p))
    kept = {f.name.split(".", 1)[0] for f in (root / "dist" / "history" / NAME).iterdir()}
    assert kept <= builds, f"kept tarballs of builds that are gone: {kept - builds}"
    for d in (root / "dist", root / "dist" / "history" / NAME, root / "docker" / NAME):
        hidden = [f.name for f in d.iterdir() if f.name.startswith(".")]
        assert hidden == [], f"leftovers in {d}: {hidden}"
    for build_id in discarded:
        assert build_id not in builds
        assert _images_of(p, build_id) == [], f"an image of the discarded build {build_id}"


def _wait_for(what: str, check: object, proc: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert proc.poll() is None, f"the nightly ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)  # polling: the nightly reaching `what`


def _candidate_id(p: Project) -> str:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(
            (p.root / "build" / "state" / "candidate" / NAME / "candidate.json").read_text()
        )
        return str(data.get("build_id", ""))
    return ""


def _stage(p: Project, *stages: str) -> subprocess.Popen[str]:
    """A process running envbuild's stage executors as doit's actions call them."""
    return _stage_of(p, NAME, *stages)


def _stage_of(p: Project, name: str, *stages: str) -> subprocess.Popen[str]:
    code = "import sys; from envbuild.commands import stages\n" + "".join(
        f"stages.execute({s!r}, sys.argv[1], {name!r})\n" for s in stages
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(p.root)],
        cwd=p.root,
        env=p.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_kill_9_when_the_candidate_is_complete_then_nightly_then_rollback(
    greet: tuple[Project, Path],
) -> None:
    """Killed the moment the candidate's marker exists (before it was smoke-tested): the
    next nightly discards it, and rollback goes to a build that has everything."""
    p, channel = greet
    first = _published(p)
    _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
    killed = p.doit("_nightly_env:greet", check=False, env=armed("built"))
    assert killed.returncode == -9, killed.stdout + killed.stderr
    untested = _candidate_id(p)
    assert untested and read_marker(p.root / "envs" / ".builds" / NAME / untested)
    _publish(channel, "1.2", "MESSAGE = 'hello 1.2'\n")
    assert f"| {NAME} | promoted |" in p.doit("nightly").stdout
    second = _published(p)
    assert _greeting(p) == "hello 1.2" and untested not in _builds(p)
    _nothing_left(p, (untested,))
    rolled = p.doit("rollback", f"env={NAME}")
    assert f"now at build {first['build_id']}" in rolled.stdout
    assert _published(p) == first and second["build_id"] in _builds(p)
    _nothing_left(p, (untested,))


@pytest.fixture
def slow_greet(make_project, channel: Path, tmp_path: Path, engine: None) -> tuple[Project, Path]:  # type: ignore[no-untyped-def]
    """Like test_promotion's ``greet``, with an 8 s smoke command (the nightly's host and
    in-image checks take that long: a window other commands start in), keep = 2."""
    import shutil

    own = tmp_path / "own-channel"
    shutil.copytree(channel, own)
    _publish(own, "1.0", "MESSAGE = 'hello 1.0'\n")
    project = make_project(mirror=str(own), recipes={NAME: SLOW_SMOKE})
    toml = project.root / "envbuild.toml"
    toml.write_text(toml.read_text() + "[builds]\nkeep = 2\n")
    project.doit("nightly")
    return project, own


@pytest.mark.slow
def test_pack_docker_and_build_started_while_a_nightly_switches(
    slow_greet: tuple[Project, Path],
) -> None:
    """`doit build`, pack and docker started while the nightly checks its candidate's
    image: they wait for its switch, then find their stage current for the new build."""
    p, channel = slow_greet
    before = _published(p)
    _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
    night = p.popen("nightly", output=True)
    _wait_for(
        "the candidate's image", lambda: _candidate_id(p) and _images_of(p, _candidate_id(p)), night
    )
    candidate = _candidate_id(p)
    others = [_stage(p, "pack"), _stage(p, "docker"), p.popen("build", f"env={NAME}", output=True)]
    out, err = night.communicate(timeout=600)
    assert night.returncode == 0, out + err
    for o in others:
        text = o.communicate(timeout=600)[0]
        assert o.returncode == 0, text
    after = _published(p)
    assert after["build_id"] == candidate != before["build_id"]
    assert _greeting(p) == "hello 1.1"
    assert _builds(p) == sorted([before["build_id"], candidate])  # no rebuild of the same lock
    _nothing_left(p)
    assert Project.executed(p.doit("docker")) == []


@pytest.mark.slow
def test_gc_during_a_nightly_that_follows_a_rollback(slow_greet: tuple[Project, Path]) -> None:
    """After a rollback the newer build is the other kept one; gc run while the next
    nightly's candidate is complete must leave the rollback build its tarball and image."""
    p, channel = slow_greet
    first = _published(p)
    _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
    p.doit("nightly")
    second = _published(p)
    p.doit("rollback", f"env={NAME}")
    assert _published(p) == first
    _publish(channel, "1.2", "MESSAGE = 'hello 1.2'\n")
    night = p.popen("nightly", output=True)

    def candidate_complete() -> bool:
        c = _candidate_id(p)
        return bool(c) and read_marker(p.root / "envs" / ".builds" / NAME / c) is not None

    _wait_for("a complete candidate", candidate_complete, night)
    gc = p.doit("gc")
    out, err = night.communicate(timeout=600)
    assert night.returncode == 0, out + err
    third = _published(p)
    assert _greeting(p) == "hello 1.2"
    # keep = 2: the current build and the newest other one, second, with all it needs
    assert _builds(p) == sorted([second["build_id"], third["build_id"]]), gc.stdout
    _nothing_left(p, (first["build_id"],))
    assert f"now at build {second['build_id']}" in p.doit("rollback", f"env={NAME}").stdout
    assert _published(p) == second
    _nothing_left(p, (first["build_id"],))


@contextlib.contextmanager
def _foreign_images(recipe: str) -> Iterator[list[str]]:
    """Images of another project on the same engine: labelled by envbuild for a recipe of
    the same name, one tagged, one untagged unpack stage, one untagged old-style image
    without a project label. Removed afterwards (they are this test's own)."""
    mark = uuid.uuid4().hex
    labels = {
        "tagged": f"org.envbuild.recipe={recipe} org.envbuild.project=0123456789abcdef "
        f"org.envbuild.build-id=20250101T000000000Z-{mark[:12]}",
        "stage": f"org.envbuild.stage=unpack-of-build org.envbuild.recipe={recipe} "
        f"org.envbuild.build-id=20250101T000000000Z-{mark[12:24]}",
        "old": f"org.envbuild.recipe={recipe} org.envbuild.build-id=20250101T000000000Z-x{mark[:11]}",
    }
    ids = []
    for kind, label in labels.items():
        dockerfile = f"FROM debian:bookworm-slim\nLABEL {label} test.mark={mark}\n"
        tag = ["-t", f"foreign-{mark}/{recipe}:old"] if kind == "tagged" else []
        r = subprocess.run(
            ["docker", "build", "-q", *tag, "-"], input=dockerfile, capture_output=True,
            text=True, check=True, timeout=300, env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
        ids.append(r.stdout.strip().splitlines()[-1])
    try:
        yield ids
    finally:
        for image_id in ids:
            subprocess.run(["docker", "rmi", "--force", image_id], capture_output=True, timeout=120)


@pytest.mark.slow
def test_a_foreign_project_s_images_are_never_touched(greet: tuple[Project, Path]) -> None:
    p, channel = greet
    first = _published(p)
    with _foreign_images(NAME) as foreign:
        listed = p.doit("gc", "--dry-run").stdout
        assert not any(i.split(":")[-1][:12] in listed for i in foreign), listed
        assert "foreign-" not in listed
        _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
        p.doit("nightly")  # builds an image: prunes its own unpack stage only
        p.doit("rollback", f"env={NAME}")
        p.doit("gc")
        for image_id in foreign:
            assert _docker("image", "inspect", "--format", "{{.Id}}", image_id) == image_id
    assert _published(p) == first
    pid = project_id(p.root)
    stages = _docker("images", "-aq", "--filter", "label=org.envbuild.stage=unpack-of-build",
                     "--filter", f"label=org.envbuild.project={pid}")  # fmt: skip
    assert stages == ""  # this project's unpack stages were removed


@pytest.mark.slow
def test_a_full_disk_during_a_nightly_is_a_failed_recipe(greet: tuple[Project, Path]) -> None:
    """dist/ on a small tmpfs (a real ENOSPC, root only): the candidate's tarball does not
    fit; the nightly reports it, discards the candidate and keeps the five."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    p, channel = greet
    before = _published(p)
    dist = p.root / "dist"
    used = int(subprocess.run(["du", "-sb", str(dist)], capture_output=True, text=True,
                              check=True).stdout.split()[0])  # fmt: skip
    saved = p.root / "dist-saved"
    subprocess.run(["cp", "-a", str(dist), str(saved)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={used + (1 << 20)}", "tmpfs", str(dist)],
                   check=True)  # fmt: skip
    try:
        subprocess.run(["cp", "-a", f"{saved}/.", str(dist)], check=True)
        assert _published(p) == before
        _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
        night = p.doit("nightly", check=False)
        assert night.returncode == 1 and "Traceback" not in night.stdout + night.stderr
        report = (p.root / "reports" / "nightly.md").read_text()
        assert f"| {NAME} | FAILED at pack |" in report
        assert "No space left on device" in report
        assert _published(p) == before and _greeting(p) == "hello 1.0"
        failed = json.loads((p.root / "reports" / "nightly.json").read_text())[0]["build_id"]
        _nothing_left(p, (failed,))
    finally:
        subprocess.run(["umount", "-l", str(dist)], check=False)


def _processes_naming(text: str) -> list[str]:
    """Command lines of running processes that contain ``text`` (read from /proc)."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if text in argv:
                out.append(argv)
    return out


@pytest.mark.slow
def test_a_killed_nightly_leaves_no_docker_build_running(greet: tuple[Project, Path]) -> None:
    """kill -9 of the nightly (not its process group) while `docker build` runs: the
    build dies with it; no image of the discarded candidate appears later."""
    p, channel = greet
    before = _published(p)
    _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
    night = p.popen("nightly")
    staged = p.root / "build" / "state" / "candidate" / NAME / "docker" / "Dockerfile"
    _wait_for("the candidate's image build", staged.exists, night)
    candidate = _candidate_id(p)
    _wait_for("the candidate's docker build", lambda: _processes_naming(candidate), night)
    os.kill(night.pid, signal.SIGKILL)
    night.wait(timeout=60)
    deadline = time.monotonic() + 10
    while _processes_naming(candidate) and time.monotonic() < deadline:
        time.sleep(0.1)  # the docker client's parent-death signal (die_with_parent) landing
    assert _processes_naming(candidate) == [], "docker build outlived the killed nightly"
    p.doit("build", f"env={NAME}")  # recovery: the candidate is discarded
    time.sleep(20)  # a docker build left running would have tagged its image by now
    tagged = _docker("images", "--filter", f"label=org.envbuild.build-id={candidate}",
                     "--filter", "dangling=false", "--format", "{{.Repository}}:{{.Tag}}")  # fmt: skip
    assert tagged == "", f"a docker build outlived the killed nightly: {tagged}"
    p.doit("gc")  # layers the engine committed while cancelling the build
    assert _published(p) == before
    _nothing_left(p, (candidate,))


def test_gc_lists_and_removes_leftovers_of_interrupted_writes(project: Project) -> None:
    """`.link-*` names and staged `*.tmp` files a killed run left (in dist/, the kept
    tarballs, the Docker context, envs/) are garbage; another recipe's are not this one's."""
    project.doit("build")
    root = project.root
    leftovers = [
        root / "dist" / ".tiny-linux-64.tar.zst.link-4242",
        root / "dist" / ".tiny-linux-64.tar.zst.x1y2.tmp",
        root / "dist" / "history" / "tiny" / ".20260101T000000000Z-0123.tar.zst.ab.tmp",
        root / "docker" / "tiny" / ".env.tar.link-4242",
        root / "envs" / ".tiny.link-4242",
    ]
    other = root / "dist" / ".tiny-x-linux-64.tar.zst.link-1"  # recipe tiny-x's
    for f in [*leftovers, other]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x" * 1000)
    listed = project.doit("gc", "--dry-run").stdout
    assert all(str(f) in listed for f in leftovers), listed
    assert str(other) not in listed
    project.doit("gc")
    assert [f for f in leftovers if f.exists()] == [] and other.exists()
    assert Project.executed(project.doit("build")) == []


@pytest.mark.slow
def test_kill_9_while_the_candidate_is_packed_leaves_nothing(greet: tuple[Project, Path]) -> None:
    p, channel = greet
    before = _published(p)
    _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
    night = p.popen("nightly")
    history = p.root / "dist" / "history" / NAME
    _wait_for("the candidate's tarball", lambda: any(history.glob(".*.tmp")), night)
    candidate = _candidate_id(p)
    os.killpg(night.pid, signal.SIGKILL)
    night.wait(timeout=60)
    p.doit("build", f"env={NAME}")  # recovery
    assert _published(p) == before
    _nothing_left(p, (candidate,))


def test_docker_refuses_a_tarball_of_another_build(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image is made only from the current build's tarball: after a rebuild that was not
    packed, the Docker stage called directly says so instead of labelling the old tarball
    with the new build."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # rendering is enough
    project.doit("pack")
    project.doit("--always-execute", "build:tiny")
    docker = _stage_of(project, "tiny", "docker")
    out = docker.communicate(timeout=300)[0]
    assert docker.returncode != 0 and "'s tarball; run `doit pack env=tiny`" in out, out
    assert not (project.root / "docker" / "tiny" / "Dockerfile").exists()
