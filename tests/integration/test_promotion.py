"""Issue 12: a nightly promotes all or nothing. The five published artifacts of an environment
(environment, lockfile, explicit files, tarball, image tag) switch together after the
candidate passed everything, survive kill -9 at every step of the switch (the next user
command finishes it), and roll back together."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from envbuild.layout import lock_copy, read_marker
from envbuild.ops.promotion import STEPS
from envbuild.util.kill_points import armed

from ..conftest import Project, kill_after
from ..support.fakechannel import index, make_module_package

GREETING = """\
dependencies: ['python 3.11.*', greeting]
smoke:
  imports: [greeting]
"""
NAME = "greet"


@pytest.fixture
def greet(make_project, channel: Path, tmp_path: Path, engine: None) -> tuple[Project, Path]:  # type: ignore[no-untyped-def]
    """A project whose recipe ``greet`` depends on ``greeting`` from its own channel copy,
    promoted once by a nightly: (project, channel)."""
    own = tmp_path / "own-channel"
    shutil.copytree(channel, own)
    _publish(own, "1.0", "MESSAGE = 'hello 1.0'\n")
    project = make_project(mirror=str(own), recipes={NAME: GREETING})
    toml = project.root / "envbuild.toml"
    toml.write_text(toml.read_text() + "[builds]\nkeep = 3\n")
    project.doit("nightly")
    return project, own


def _publish(channel: Path, version: str, source: str) -> None:
    make_module_package(channel, "greeting", version, source)
    index(channel)


def _docker(*argv: str) -> str:
    return subprocess.run(
        ["docker", *argv], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()


def _published(p: Project) -> dict[str, Any]:
    """The five artifacts as they are now, after checking they describe one build."""
    root = p.root
    info = read_marker(root / "envs" / NAME)
    assert info is not None
    lock = root / "locks" / f"{NAME}.conda-lock.yml"
    assert lock.read_bytes() == lock_copy(root / "envs" / NAME).read_bytes()
    assert hashlib.sha256(lock.read_bytes()).hexdigest() == info.lock_sha256
    urls = {
        pkg["url"]
        for pkg in yaml.safe_load(lock.read_text())["package"]
        if pkg["platform"] == info.platform
    }
    explicit = root / "locks" / f"{NAME}-{info.platform}.explicit.txt"
    listed = {ln.split("#")[0] for ln in explicit.read_text().splitlines() if "://" in ln}
    assert listed == urls, "the explicit file is not the lockfile's"
    tarball = root / "dist" / f"{NAME}-{info.platform}.tar.zst"
    assert os.path.samefile(tarball, root / "dist" / "history" / NAME / f"{info.build_id}.tar.zst")
    image_id = _docker("image", "inspect", "--format", "{{.Id}}", f"envbuild/{NAME}:current")
    label = _docker("image", "inspect", "--format",
                    '{{index .Config.Labels "org.envbuild.build-id"}}', f"envbuild/{NAME}:current")  # fmt: skip
    assert label == info.build_id, "envbuild/greet:current is another build's image"
    assert not (root / "build" / "state" / f"{NAME}.promotion.json").exists()
    return {
        "build_id": info.build_id,
        "lock": lock.read_bytes(),
        "explicit": explicit.read_bytes(),
        "tarball": hashlib.sha256(tarball.read_bytes()).hexdigest(),
        "image": image_id,
    }


def _greeting(p: Project) -> str:
    py = p.root / "envs" / NAME / "bin" / "python"
    return subprocess.run(
        [py, "-I", "-c", "import greeting; print(greeting.MESSAGE)"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip


def _no_candidate_left(p: Project, current: str, candidate: str) -> None:
    builds = p.root / "envs" / ".builds" / NAME
    assert [d.name for d in builds.iterdir() if d.is_dir()] == [current]
    kept = sorted(f.name for f in (p.root / "dist" / "history" / NAME).iterdir())
    assert kept == [f"{current}.cdx.json", f"{current}.tar.zst"]  # tarball and its SBOM
    tagged = _docker("images", "--filter", f"label=org.envbuild.build-id={candidate}",
                     "--filter", "dangling=false", "--format", "{{.Repository}}:{{.Tag}}")  # fmt: skip
    assert tagged == "", f"the failed candidate's image is still tagged: {tagged}"
    assert not (p.root / "build" / "state" / "candidate" / NAME).exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "source", "error"),
    [
        # imports where it was installed; the tarball's proof unpacks it elsewhere
        ("pack", "import sys\nif '/.builds/' not in sys.prefix:\n"
                 "    raise ImportError('greeting 2.0 works only where it was installed')\n",
         "greeting 2.0 works only where it was installed"),
        # passes on the host and in the unpacked tarball, not in the image's prefix
        ("docker", "import sys\nif sys.prefix == '/opt/env':\n"
                   "    raise ImportError('greeting 2.0 cannot run from /opt/env')\n",
         "greeting 2.0 cannot run from /opt/env"),
    ],
)  # fmt: skip
def test_a_candidate_failing_late_changes_nothing(
    greet: tuple[Project, Path], stage: str, source: str, error: str
) -> None:
    p, channel = greet
    before = _published(p)
    _publish(channel, "2.0", source)
    night = p.doit("nightly", check=False)
    assert night.returncode != 0 and f"| {NAME} | FAILED at {stage} |" in night.stdout
    report = json.loads((p.root / "reports" / "nightly.json").read_text())[0]
    assert report["stage"] == stage and error in report["error"]
    assert _published(p) == before
    assert _greeting(p) == "hello 1.0"
    assert report["build_id"] and report["build_id"] != before["build_id"]
    _no_candidate_left(p, before["build_id"], report["build_id"])
    assert Project.executed(p.doit("docker")) == []  # every stage still current


@pytest.mark.slow
def test_rollback_switches_all_five_back(greet: tuple[Project, Path]) -> None:
    p, channel = greet
    first = _published(p)
    _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
    assert f"| {NAME} | promoted |" in p.doit("nightly").stdout
    second = _published(p)
    assert second["build_id"] != first["build_id"] and _greeting(p) == "hello 1.1"
    assert all(second[k] != first[k] for k in ("lock", "explicit", "tarball", "image"))
    assert f"{NAME}: now at build {first['build_id']}" in p.doit("rollback", f"env={NAME}").stdout
    assert _published(p) == first and _greeting(p) == "hello 1.0"
    assert Project.executed(p.doit("docker")) == []  # what rollback restored is current


@pytest.mark.slow
def test_kill_9_at_every_step_of_a_switch_then_the_next_command_finishes_it(
    greet: tuple[Project, Path],
) -> None:
    """Killed after each step of the switch (journal written, so the candidate passed
    everything): the next user command (``doit build``, or ``doit nightly``) completes it.
    Killed at random moments before that: the next command leaves the old build, consistent.
    """
    p, channel = greet
    outcomes = {"finished the switch": 0, "kept the current build": 0}
    points: list[str | float] = [*STEPS, *(random.Random(12).uniform(1.0, 6.0) for _ in range(3))]
    for i, point in enumerate(points):
        before = _published(p)
        _publish(channel, f"1.{i + 1}", f"MESSAGE = 'hello 1.{i + 1}'\n")
        if isinstance(point, str):
            killed = p.doit("_nightly_env:greet", check=False, env=armed(point))
            assert killed.returncode == -9, killed.stdout + killed.stderr
        else:
            kill_after(p.popen("_nightly_env:greet"), point)
        journal = (p.root / "build" / "state" / f"{NAME}.promotion.json").exists()
        assert journal == isinstance(point, str)
        nxt = ("build", "env=greet") if i % 2 == 0 else ("nightly", "env=greet")
        p.doit(*nxt)  # the next user command
        after = _published(p)
        if after["build_id"] == before["build_id"]:
            outcomes["kept the current build"] += 1
            assert after == before
        else:
            outcomes["finished the switch"] += 1
            assert _greeting(p) == f"hello 1.{i + 1}"
            assert all(after[k] != before[k] for k in ("lock", "explicit", "tarball", "image"))
        assert not (p.root / "build" / "state" / "candidate" / NAME).exists()
    print(f"kill -9 outcomes after the next command: {outcomes}")
    # every kill after the journal was written ended in the candidate being current
    assert outcomes["finished the switch"] >= len(STEPS)
