"""Real images: built by a local Docker engine from the rendered context, checked inside.

Needs an engine and a ``debian:bookworm-slim`` image (scripts/services.sh makes one with
debootstrap + docker import when no registry is reachable). CI sets ENVBUILD_REQUIRE_DOCKER=1,
so there a missing engine fails instead of skipping.
"""

from __future__ import annotations

import subprocess

import pytest

from envbuild.ship import engine as image
from envbuild.util.fs import tree_bytes
from envbuild.util.templates import PACKAGE_TEMPLATES

from ..conftest import Project


def _run(tag: str, *argv: str) -> str:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", tag, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()


def _inspect_size(tag: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", tag],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def test_image_built_and_checked_inside(engine: None, project: Project) -> None:
    proc = project.doit("docker")
    assert "smoke checks passed inside it" in proc.stderr
    lock_sha = __import__("envbuild.install.build", fromlist=["x"]).file_sha256(
        project.root / "locks" / "tiny.conda-lock.yml"
    )
    tag = image.tag_for("tiny", lock_sha, image.project_id(project.root))
    img = image.inspect(tag)
    assert img.build_id and img.size > 10_000_000
    labels = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '"org.envbuild.recipe":"tiny"' in labels and lock_sha in labels
    assert _run(tag, "id", "-u") != "0"
    assert _run(tag, "sh", "-c", "command -v python") == "/opt/env/bin/python"
    # the interpreter brings its own libraries: nothing from the minimal base image's host set
    out = _run(
        tag,
        "python",
        "-I",
        "-c",
        "import ssl, sqlite3, ctypes, lzma, bz2, dateutil;print(ssl.OPENSSL_VERSION)",
    )
    assert out.startswith("OpenSSL")
    libs = _run(tag, "sh", "-c", "ldd /opt/env/lib/python3.11/lib-dynload/_ssl*.so")
    assert "libssl.so.3 => /opt/env/lib/" in libs and "libcrypto.so.3 => /opt/env/lib/" in libs
    # one layer of environment: conda-unpack's rewrites are not a second copy (issue 9)
    env_bytes = tree_bytes((project.root / "envs" / "tiny").resolve())
    base = int(_inspect_size("debian:bookworm-slim"))
    assert img.size <= base + 1.05 * env_bytes, (img.size, base, env_bytes)
    # imports read the bytecode compiled at build time; nothing is compiled in the container
    verbose = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", tag, "python", "-I", "-v", "-c",
         "import dateutil.parser, json.decoder"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stderr  # fmt: skip
    assert (
        "code object from '/opt/env/lib/python3.11/site-packages/dateutil/parser/__pycache__"
        in verbose
    )
    # the unpack stage leaves no dangling 500 MB image behind
    stages = subprocess.run(
        ["docker", "images", "-q", "--filter", "label=org.envbuild.stage=unpack-of-build",
         "--filter", f"label=org.envbuild.project={image.project_id(project.root)}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert stages == []
    # rebuilt only when the tarball or the template changes
    assert Project.executed(project.doit("docker")) == []
    template = project.root / "templates" / "Dockerfile.j2"  # the project's own, file by file
    template.parent.mkdir()
    template.write_text((PACKAGE_TEMPLATES / "Dockerfile.j2").read_text() + "# a local tweak\n")
    assert Project.executed(project.doit("docker")) == ["docker:tiny"]


def test_without_engine_renders_and_says_so(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    proc = project.doit("docker")
    assert "no Docker engine reachable: image for 'tiny' not built" in proc.stderr
    assert (project.root / "docker" / "tiny" / "Dockerfile").exists()
