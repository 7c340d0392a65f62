"""The registry inside the all-or-nothing switch: a changed night pushes its candidate by
digest before the switch and moves ``:current`` as a journaled step; kill -9 anywhere ends, after
the next command, with all six (environment, lockfile, explicit files, tarball, image, registry
``:current``) describing one build; a quiet night asks no registry; rollback moves ``:current``
back; a base image named by registry and digest is pulled once. Against Debian's distribution
registry, with images written without an engine."""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from envbuild.layout import lock_copy, read_marker
from envbuild.ship import oci
from envbuild.util.kill_points import armed

from ..conftest import Project
from ..support.ociregistry import Registry, running_registry
from .test_promotion import GREETING, NAME, _greeting, _publish

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("reg")) as reg:
        yield reg


def _config(p: Project, registry: str, base: str) -> None:
    toml = p.root / "envbuild.toml"
    lines = [ln for ln in toml.read_text().splitlines() if not ln.startswith("[publish]")]
    lines = [ln for ln in lines if not ln.startswith(("registry =", "[image]", "base ="))]
    toml.write_text("\n".join(lines) + f'\n[publish]\nregistry = "{registry}"\n'
                    f'[image]\nbase = "{base}"\n')  # fmt: skip


@pytest.fixture
def pgreet(
    make_project, channel: Path, tmp_path: Path, base: Path, registry: Registry
) -> tuple[Project, Path]:  # type: ignore[no-untyped-def]
    """``greet`` from its own channel, published to ``registry/nt`` by a first nightly."""
    own = tmp_path / "own-channel"
    shutil.copytree(channel, own)
    _publish(own, "1.0", "MESSAGE = 'hello 1.0'\n")
    p = make_project(mirror=str(own), recipes={NAME: GREETING})
    (p.root / "envbuild.toml").write_text(
        (p.root / "envbuild.toml").read_text() + "[builds]\nkeep = 3\n"
    )
    _config(p, f"{registry.host}/nt/{tmp_path.name[-12:].lower().strip('_')}", str(base))
    p.doit("nightly", env=NO_ENGINE)
    return p, own


def _repo(p: Project) -> str:
    text = (p.root / "envbuild.toml").read_text()
    return text.split('registry = "')[1].split('"')[0] + f"/{NAME}"


def _current_digest(reg: Registry, repo: str) -> str:
    return str(json.loads(reg.skopeo("inspect", f"docker://{repo}:current"))["Digest"])


def _six(p: Project, reg: Registry) -> dict[str, Any]:
    """The six artifacts, after checking they describe one build."""
    root = p.root
    info = read_marker(root / "envs" / NAME)
    assert info is not None
    assert not (root / "build" / "state" / f"{NAME}.promotion.json").exists()
    lock = (root / "locks" / f"{NAME}.conda-lock.yml").read_bytes()
    assert lock == lock_copy(root / "envs" / NAME).read_bytes()
    assert hashlib.sha256(lock).hexdigest() == info.lock_sha256
    tarball = root / "dist" / f"{NAME}-{info.platform}.tar.zst"
    assert os.path.samefile(tarball, root / "dist" / "history" / NAME / f"{info.build_id}.tar.zst")
    archive = root / "dist" / f"{NAME}-{info.platform}.oci.tar"
    image = oci.archive_digest(archive)
    kept = root / "envs" / ".builds" / NAME / f"{info.build_id}.image.json"
    assert json.loads(kept.read_text())["digest"] == image, "the image is another build's"
    state = json.loads((root / "build" / "state" / f"{NAME}.publish.json").read_text())
    assert state["build_id"] == info.build_id and state["image"] == image
    assert _current_digest(reg, _repo(p)) == image, ":current is another build's image"
    return {"build_id": info.build_id, "lock": lock, "image": image}


def test_changed_night_publishes_quiet_night_asks_nothing_rollback_moves_back(
    pgreet: tuple[Project, Path], registry: Registry, base: Path
) -> None:
    p, channel = pgreet
    first = _six(p, registry)
    lock12 = hashlib.sha256(first["lock"]).hexdigest()[:12]
    tags = registry.tags(_repo(p).split("/", 1)[1])
    assert {"current", lock12} <= set(tags) and f"sha256-{first['image'][7:]}" in tags
    status = p.doit("status", env=NO_ENGINE).stdout
    assert f"{_repo(p)}@{first['image'][:19]}" in status, status

    # a quiet night: nothing changed, so no registry is asked (this one answers nothing)
    repo = _repo(p)
    _config(p, "127.0.0.1:9/nt", str(p.root.parent / "no-base.oci.tar"))
    quiet = p.doit("nightly", env=NO_ENGINE)
    assert f"| {NAME} | unchanged |" in quiet.stdout
    _config(p, repo.rsplit("/", 1)[0], str(base))
    assert _six(p, registry) == first

    # a registry that is down when the candidate is pushed: nothing is switched
    _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
    _config(p, "127.0.0.1:9/nt", str(base))
    down = p.doit("nightly", env=NO_ENGINE, check=False)
    assert down.returncode != 0 and f"| {NAME} | FAILED at publish |" in down.stdout
    assert "127.0.0.1:9" in down.stdout
    _config(p, repo.rsplit("/", 1)[0], str(base))
    assert _six(p, registry) == first and _greeting(p) == "hello 1.0"

    # the next changed night publishes
    assert f"| {NAME} | promoted |" in p.doit("nightly", env=NO_ENGINE).stdout
    second = _six(p, registry)
    assert second["image"] != first["image"] and _greeting(p) == "hello 1.1"

    rolled = p.doit("rollback", f"env={NAME}", env=NO_ENGINE)
    assert f"now at build {first['build_id']}" in rolled.stdout
    assert _six(p, registry) == first and _greeting(p) == "hello 1.0"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["pushed", "image", "registry"])
def test_kill_9_around_the_registry_step_then_the_next_command(
    pgreet: tuple[Project, Path], registry: Registry, point: str
) -> None:
    """Killed after the candidate was pushed (no journal yet): :current and everything else
    stay at the old build. Killed after the journal, before or after the registry step: the
    next command finishes the switch, :current included."""
    p, channel = pgreet
    before = _six(p, registry)
    _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
    killed = p.doit(f"_nightly_env:{NAME}", check=False, env=armed(point, NO_ENGINE))
    assert killed.returncode == -9, killed.stdout + killed.stderr
    journal = (p.root / "build" / "state" / f"{NAME}.promotion.json").exists()
    assert journal == (point != "pushed")
    if point != "registry":
        assert _current_digest(registry, _repo(p)) == before["image"]
    p.doit("build", f"env={NAME}", env=NO_ENGINE)  # the next user command
    after = _six(p, registry)
    if point == "pushed":
        assert after == before and _greeting(p) == "hello 1.0"
    else:
        assert after["build_id"] != before["build_id"] and _greeting(p) == "hello 1.1"


def test_publish_without_registry_fails_before_building(project: Project) -> None:
    proc = project.doit("publish", "env=tiny", check=False, env=NO_ENGINE)
    assert proc.returncode != 0 and "[publish] registry is not set" in proc.stdout + proc.stderr
    assert Project.executed(proc) == ["publish:tiny"]
    assert not (project.root / "envs" / "tiny").exists()


def test_base_named_by_registry_and_digest_is_pulled_once(
    project: Project, base: Path, registry: Registry
) -> None:
    ref = f"{registry.host}/bases/debian"
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                    f"oci-archive:{base}", f"docker://{ref}:bookworm"],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    digest = json.loads(registry.skopeo("inspect", f"docker://{ref}:bookworm"))["Digest"]
    toml = project.root / "envbuild.toml"
    toml.write_text(toml.read_text() + f'[image]\nbase = "{ref}:bookworm"\n')
    refused = project.doit("docker", check=False, env=NO_ENGINE)
    assert refused.returncode != 0 and "write it by digest" in refused.stdout + refused.stderr
    toml.write_text(toml.read_text().replace(f"{ref}:bookworm", f"{ref}@{digest}"))
    project.doit("docker", env=NO_ENGINE)
    record = json.loads((project.root / "build" / "state" / "tiny.image.json").read_text())
    cached = project.root / "build" / "base-cache" / digest.replace(":", "-")
    assert (cached / "index.json").is_file()
    assert record["base"] == oci.archive_digest(base)
    # pulled once: up to date, and the cache answers with the registry gone
    assert Project.executed(project.doit("docker", env=NO_ENGINE)) == []
    toml.write_text(toml.read_text().replace(registry.host, "127.0.0.1:9"))
    forced = project.doit("run", "--always-execute", "docker", env=NO_ENGINE)
    assert "docker:tiny" in Project.executed(forced)
    again = json.loads((project.root / "build" / "state" / "tiny.image.json").read_text())
    assert again["digest"] == record["digest"]
    # a cache that is not what the digest names is refused, never used
    index = (cached / "index.json").read_bytes()
    (cached / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    tampered = project.doit("run", "--always-execute", "docker", check=False, env=NO_ENGINE)
    assert tampered.returncode != 0 and f"the cached base {cached}" in tampered.stdout
    (cached / "index.json").write_bytes(index)
    layer = max((cached / "blobs" / "sha256").iterdir(), key=lambda f: f.stat().st_size)
    data = layer.read_bytes()
    layer.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    corrupt = project.doit("run", "--always-execute", "docker", check=False, env=NO_ENGINE)
    out = corrupt.stdout + corrupt.stderr
    assert corrupt.returncode != 0 and "the base is corrupt" in out, out
    assert "is the cached copy of [image] base" in out and "delete it" in out


def _forget(reg: Registry, repo: str) -> None:
    """The registry loses ``repo`` (its manifests, tags and layer links): a reset or a
    registry-side garbage collection."""
    shutil.rmtree(reg.root / "docker" / "registry" / "v2" / "repositories" / repo.split("/", 1)[1])


@pytest.mark.slow
def test_a_registry_that_lost_the_images_is_pushed_again_by_the_switch(
    pgreet: tuple[Project, Path], registry: Registry
) -> None:
    """Rollback after the registry lost everything pushes the target again; a switch cut after
    its journal, with the registry reset meanwhile, is finished by the next command, and
    `doit status` says it is pending until then; `doit publish` of what the nightly pushed
    uploads nothing (the same artifacts, titled as doit publish titles them)."""
    p, channel = pgreet
    first = _six(p, registry)
    _publish(channel, "1.1", "MESSAGE = 'hello 1.1'\n")
    p.doit("nightly", env=NO_ENGINE)
    _forget(registry, _repo(p))
    p.doit("rollback", f"env={NAME}", env=NO_ENGINE)
    assert _six(p, registry) == first

    _publish(channel, "1.2", "MESSAGE = 'hello 1.2'\n")
    killed = p.doit(f"_nightly_env:{NAME}", check=False, env=armed("image", NO_ENGINE))
    assert killed.returncode == -9, killed.stdout + killed.stderr
    journal = json.loads((p.root / "build" / "state" / f"{NAME}.promotion.json").read_text())
    pending = f"the switch to build {journal['build_id']} was interrupted"
    assert pending in p.doit("status", env=NO_ENGINE).stdout
    _forget(registry, _repo(p))
    p.doit("build", f"env={NAME}", env=NO_ENGINE)
    third = _six(p, registry)
    assert third["build_id"] == journal["build_id"] and _greeting(p) == "hello 1.2"
    assert pending not in p.doit("status", env=NO_ENGINE).stdout
    again = p.doit("publish", f"env={NAME}", env=NO_ENGINE).stdout
    assert "0 upload(s), 0.0 MB sent, no tag moved" in again, again
    index = json.loads(registry.skopeo("inspect", "--raw",
                                       f"docker://{_repo(p)}:sha256-{third['image'][7:]}"))  # fmt: skip
    assert len(index["manifests"]) == 2  # one tarball, one SBOM: not one more of each


def test_publish_waits_for_a_switch_in_progress(
    pgreet: tuple[Project, Path], registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envbuild.install.build import build_mutex
    from envbuild.project import load_project

    p, _ = pgreet
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE["DOCKER_HOST"])
    with build_mutex(load_project(p.root), NAME):  # as a nightly or rollback switching holds it
        proc = p.popen("publish", f"env={NAME}", output=True)
        assert proc.stderr is not None
        early = _read_until(proc.stderr, "waiting for another build", timeout=120)
        assert proc.poll() is None, "doit publish did not wait for the build mutex"
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + early + err


def _read_until(stream: IO[str], text: str, timeout: float) -> str:
    """What ``stream`` (a child's pipe) says up to and including ``text``; fails the test if
    the child closes it or ``timeout`` seconds pass first. Reads the file descriptor itself,
    so ``communicate()`` afterwards gets the rest."""
    deadline, seen = time.monotonic() + timeout, b""
    while text.encode() not in seen:
        ready, _, _ = select.select([stream], [], [], max(deadline - time.monotonic(), 0))
        assert ready, f"no {text!r} within {timeout} s: {seen.decode(errors='replace')}"
        chunk = os.read(stream.fileno(), 65536)
        assert chunk, f"the child closed its output before {text!r}: {seen.decode()}"
        seen += chunk
    return seen.decode(errors="replace")


def test_publish_without_an_image_archive_fails_the_night_before_building(
    project: Project, registry: Registry
) -> None:
    toml = project.root / "envbuild.toml"
    toml.write_text(toml.read_text() + f'[publish]\nregistry = "{registry.host}/nobase"\n')
    night = project.doit("nightly", check=False, env=NO_ENGINE)
    assert night.returncode != 0 and "| tiny | FAILED at publish |" in night.stdout
    assert "set [image] base" in night.stdout and "nothing was built" in night.stdout
    assert not (project.root / "envs" / ".builds" / "tiny").exists()
