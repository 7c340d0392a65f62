"""A planted secret, in every form a channel URL can carry one, is found in no file the project
writes (lockfiles, explicit files, reports, state, environments, tarballs, Docker contexts,
py-rattler's repodata cache, the package cache), in no output and in no image.

Forms that name the secret as ``${VAR}`` must work (py-rattler's authentication carries it);
forms that write it literally, whatever the scheme's case, must be refused before anything
is fetched or written.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from envbuild.ship.pack import open_tar_stream

from ..conftest import Project
from ..support.httpchannel import Faults, serve

SECRET = "pl4nted-S3CRET-19"
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/envbuild-test.sock"}
RECIPE = """\
name: tiny
channels: [{channel}]
dependencies: [python 3.11.*, python-dateutil]
smoke: {{imports: [dateutil]}}
"""


def _written(root: Path) -> Iterator[tuple[Path, bytes]]:
    """Every regular file under ``root`` that envbuild wrote (the project's build/ and caches
    included; not its inputs, envbuild.toml and recipes/), with tarballs decompressed."""
    for p in sorted(root.rglob("*")):
        if p.is_symlink() or not p.is_file() or p.name == "envbuild.toml":
            continue
        if p.parent.name == "recipes":
            continue
        if p.name.endswith((".tar.zst", ".tar.gz")):
            with open_tar_stream(p) as s:
                yield p, s.read()
        else:
            yield p, p.read_bytes()


def assert_nowhere(root: Path, *outputs: str, secret: str = SECRET) -> int:
    """Fail naming the files that hold ``secret``; returns how many files were searched."""
    count, holding = 0, []
    for path, data in _written(root):
        count += 1
        if secret.encode() in data:
            holding.append(str(path.relative_to(root)))
    assert not holding, f"{secret!r} written to {holding}"
    assert not any(secret in o for o in outputs), "the secret was printed"
    return count


def _project(root: Path, toml: str, channel: str) -> Project:
    (root / "recipes").mkdir(parents=True)
    shutil.copy(Path(__file__).parent.parent.parent / "dodo.py", root / "dodo.py")
    (root / "envbuild.toml").write_text(toml + '[paths]\npackage_cache = "build/pkgs"\n')
    project = Project(root)
    project.write_recipe("tiny", RECIPE.format(channel=channel))
    return project


LITERAL = [
    ("mirror, upper-case scheme, user:pass",
     f'[mirrors]\nconda-forge = "HTTP://user:{SECRET}@127.0.0.1:9/chan"\n', "conda-forge"),
    ("mirror, mixed-case scheme, /t/ token",
     f'[mirrors]\nconda-forge = "Https://127.0.0.1:9/t/{SECRET}/chan"\n', "conda-forge"),
    ("channel_alias, user:pass",
     f'[lock]\nchannel_alias = "https://user:{SECRET}@conda.example.com"\n', "conda-forge"),
    ("channel_alias, upper-case scheme, /t/ token",
     f'[lock]\nchannel_alias = "HTTPS://conda.example.com/t/{SECRET}"\n', "conda-forge"),
    ("recipe channel, upper-case scheme, user:pass", "",
     f"'HTTP://u:{SECRET}@127.0.0.1:9/chan'"),
]  # fmt: skip


@pytest.mark.parametrize(("form", "toml", "channel"), LITERAL, ids=[f for f, *_ in LITERAL])
def test_a_literal_credential_is_refused_and_written_nowhere(
    tmp_path: Path, form: str, toml: str, channel: str
) -> None:
    project = _project(tmp_path / "proj", toml, channel)
    proc = project.doit("docker", check=False, env=NO_ENGINE)
    assert proc.returncode != 0, form
    assert "write it as ${VAR}" in proc.stdout + proc.stderr
    if "channel_alias" not in form:  # an envbuild.toml error while doit loads the graph:
        assert "Traceback" not in proc.stdout + proc.stderr  # caught there by issue 18's work
    assert_nowhere(project.root, proc.stdout, proc.stderr)
    assert not (project.root / "locks" / "tiny.conda-lock.yml").exists()


# (form, envbuild.toml, recipe channel, server faults, variables; {url} is the server)
WORKING = [
    ("mirror, upper-case scheme, /t/${VAR}/",
     '[mirrors]\nconda-forge = "HTTP://127.0.0.1:{port}/t/${{EB_T}}/chan"\n', "conda-forge",
     Faults(token=SECRET), {"EB_T": SECRET}),
    ("mirror, ${USER}:${PASS}@",
     '[mirrors]\nconda-forge = "http://${{EB_U}}:${{EB_P}}@127.0.0.1:{port}/chan"\n',
     "conda-forge", Faults(basic=("ci", SECRET)), {"EB_U": "ci", "EB_P": SECRET}),
    ("channel_alias, /t/${VAR}",
     '[lock]\nchannel_alias = "http://127.0.0.1:{port}/t/${{EB_T}}"\n', "chan",
     Faults(token=SECRET), {"EB_T": SECRET}),
    ("channel_alias, upper-case scheme, ${USER}:${PASS}@",
     '[lock]\nchannel_alias = "HTTP://${{EB_U}}:${{EB_P}}@127.0.0.1:{port}"\n', "chan",
     Faults(basic=("ci", SECRET)), {"EB_U": "ci", "EB_P": SECRET}),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("form", "toml", "recipe_channel", "faults", "variables"),
    WORKING,
    ids=[w[0] for w in WORKING],
)
def test_a_variable_credential_works_and_is_written_nowhere(
    tmp_path: Path,
    channel: Path,
    form: str,
    toml: str,
    recipe_channel: str,
    faults: Faults,
    variables: dict[str, str],
) -> None:
    served = tmp_path / "served"
    shutil.copytree(channel, served / "chan")
    with serve(served, faults) as url:
        port = url.rsplit(":", 1)[1]
        project = _project(tmp_path / "proj", toml.format(port=port), recipe_channel)
        proc = project.doit("docker", env={**variables, **NO_ENGINE})
    locks = project.root / "locks"
    texts = [p.read_text() for p in locks.iterdir()]
    expected = (
        "https://conda.anaconda.org/conda-forge/"
        if recipe_channel == "conda-forge"
        else f"http://127.0.0.1:{port}/chan/"
    )
    assert all(expected in t for t in texts), form
    assert not any("${" in t or "/t/" in t or "@127" in t for t in texts), form
    assert (project.root / "docker" / "tiny" / "env.tar").exists()
    searched = assert_nowhere(project.root, proc.stdout, proc.stderr)
    assert searched > 1000  # the environment, caches and artifacts were all searched
    assert list((project.root / "build" / "repodata-cache").rglob("*.info.json"))


@pytest.mark.slow
def test_the_image_holds_no_secret(engine: None, tmp_path: Path, channel: Path) -> None:
    """The image built through a ``${VAR}`` token mirror: its layers, history and config."""
    import subprocess

    from envbuild.ship import engine as image

    served = tmp_path / "served"
    shutil.copytree(channel, served / "chan")
    with serve(served, Faults(token=SECRET)) as url:
        toml = f'[mirrors]\nconda-forge = "{url}/t/${{EB_T}}/chan"\n'
        project = _project(tmp_path / "proj", toml, "conda-forge")
        project.write_recipe(
            "leak19", RECIPE.format(channel="conda-forge").replace("tiny", "leak19")
        )
        (project.root / "recipes" / "tiny.yml").unlink()
        proc = project.doit("docker", env={"EB_T": SECRET})
    tags = [i.tag for i in image.images(image.project_id(project.root), "leak19")]
    assert tags, proc.stdout
    try:
        for tag in tags:
            saved = subprocess.run(["docker", "save", tag], capture_output=True, check=True).stdout
            meta = subprocess.run(
                ["docker", "history", "--no-trunc", tag], capture_output=True, text=True
            ).stdout + subprocess.run(["docker", "inspect", tag], capture_output=True,
                                      text=True).stdout  # fmt: skip
            assert SECRET.encode() not in saved and SECRET not in meta
    finally:
        for tag in tags:
            image.remove(tag)
    assert_nowhere(project.root, proc.stdout, proc.stderr)
