"""Names cannot escape the project; channel credentials never reach files, logs or images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from envbuild.ship.pack import open_tar_stream

from ..conftest import Project
from ..support.httpchannel import Faults, serve

TOKEN = "s3cr3t-t0ken-4242"


def test_doit_env_var_cannot_escape(project: Project) -> None:
    outside = project.root.parent / "evil.yml"
    outside.write_text("dependencies: [python]\n")
    proc = project.doit("build", "env=../evil", check=False)
    assert proc.returncode != 0
    assert "'../evil' is not a valid environment name" in proc.stdout
    assert not (project.root.parent / "evil.conda-lock.yml").exists()
    assert not list(project.root.parent.glob("envs*"))


def _all_text(root: Path) -> str:
    """Every byte of the project's outputs (locks, reports, state, envs, dist, docker),
    decoded leniently, tarballs unpacked. Download caches are machine-local and not outputs."""
    chunks = []
    outputs = [root / d for d in ("locks", "reports", "envs", "dist", "docker")]
    for p in [f for d in [*outputs, root / "build" / "state"] for f in d.rglob("*")]:
        if p.is_symlink() or not p.is_file():
            continue
        if p.name.endswith(".tar.zst"):
            with open_tar_stream(p) as s:
                chunks.append(s.read().decode(errors="replace"))
        else:
            chunks.append(p.read_bytes().decode(errors="replace"))
    return "\n".join(chunks)


def test_token_never_written_or_shown(
    make_project, channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    served = tmp_path / "served"
    shutil.copytree(channel, served / "chan")
    monkeypatch.setenv("ENVBUILD_TEST_TOKEN", TOKEN)
    with serve(served, Faults(token=TOKEN)) as url:
        project = make_project()
        (project.root / "envbuild.toml").write_text(
            f'[mirrors]\nconda-forge = "{url}/t/${{ENVBUILD_TEST_TOKEN}}/chan"\n'
            f'[paths]\npackage_cache = "{tmp_path / "pkgs"}"\n'
        )
        proc = project.doit("docker")
        lock = (project.root / "locks" / "tiny.conda-lock.yml").read_text()
        # the lock names the channel, not the mirror, and no credential reference either
        assert "url: https://conda.anaconda.org/conda-forge/noarch/python-dateutil-" in lock
        assert "/t/" not in lock and url not in lock
        assert TOKEN not in proc.stdout + proc.stderr
        assert TOKEN not in _all_text(project.root)  # locks, envs, dist, docker, reports
        # a wrong token: the error names the channel, not the secret
        monkeypatch.setenv("ENVBUILD_TEST_TOKEN", "wrong-" + TOKEN)
        project.write_recipe("tiny", "dependencies: [python, threadpoolctl]\n")
        bad = project.doit("lock", check=False)
        assert bad.returncode != 0 and "conda-forge" in bad.stdout
        assert TOKEN not in bad.stdout + bad.stderr
        # no token at all: says which variable to set
        monkeypatch.delenv("ENVBUILD_TEST_TOKEN")
        missing = project.doit("lock", check=False)
        assert "ENVBUILD_TEST_TOKEN is not set" in missing.stdout


def test_token_value_that_is_a_common_substring_corrupts_nothing(
    make_project, channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A secret such as USER=ci must not be "scrubbed" out of package metadata: records stay
    byte-for-byte what the packages say (`python`, not `${...}thon`)."""
    served = tmp_path / "served"
    shutil.copytree(channel, served / "chan")
    monkeypatch.setenv("ENVBUILD_TEST_TOKEN", "py")
    with serve(served, Faults(token="py")) as url:
        project = make_project()
        (project.root / "envbuild.toml").write_text(
            f'[mirrors]\nconda-forge = "{url}/t/${{ENVBUILD_TEST_TOKEN}}/chan"\n'
            f'[paths]\npackage_cache = "{tmp_path / "pkgs"}"\n'
        )
        project.doit("build")
    prefix = project.root / "envs" / "tiny"
    names = {json.loads(m.read_text())["name"] for m in (prefix / "conda-meta").glob("*.json")}
    assert names == {"python", "python-dateutil", "python-tzdata"}
    assert "${" not in "".join(m.read_text() for m in (prefix / "conda-meta").glob("*.json"))
    assert "${" not in (project.root / "locks" / "tiny.conda-lock.yml").read_text()
