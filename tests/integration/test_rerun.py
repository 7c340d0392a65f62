"""Make's promise: a stage reruns when one of its inputs changed, and only then.

One project, built once; then each recipe key and ``envbuild.toml`` key is edited in turn, and
``doit docker`` must run exactly the stages that read it, then nothing on a second run. The
Docker engine is hidden (``DOCKER_HOST`` points nowhere): the docker stage renders only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from ..conftest import Project

RECIPE = """\
name: tiny
channels: [conda-forge]
dependencies:
  - python 3.11.*
  - python-dateutil
smoke:
  imports: [dateutil]
  commands: ["python -c 'print(1)'"]
variables: {EB_ONE: "1"}
pack: {format: tar.zst, level: 3}
docker: {base_image: "debian:bookworm-slim", user: envbuild, uid: 1000, prefix: /opt/env}
jupyter: {kernel: false}
"""

ALL = ("lock", "build", "smoke", "pack", "docker")
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/envbuild-test.sock"}


def _sub(old: str, new: str, file: str = "recipes/tiny.yml") -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / file
        text = path.read_text()
        assert old in text, (old, text)
        path.write_text(text.replace(old, new, 1))

    return edit


def _append(line: str, file: str = "envbuild.toml") -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        with (root / file).open("a") as f:
            f.write(line)

    return edit


# (what is edited, the edit, the stages that must rerun)
TABLE: list[tuple[str, Callable[[Path], None], tuple[str, ...]]] = [
    ("recipe: a comment", _sub("name: tiny\n", "# a comment\nname: tiny\n"), ()),
    ("recipe: a default value no longer spelled out", _sub("jupyter: {kernel: false}\n", ""), ()),
    ("recipe: smoke.imports", _sub("imports: [dateutil]", "imports: [dateutil, json]"),
     ("smoke", "pack", "docker")),
    ("recipe: smoke.commands", _sub("print(1)", "print(2)"), ("smoke", "docker")),
    ("recipe: pack.level", _sub("level: 3", "level: 4"), ("pack", "docker")),
    ("recipe: pack.format", _sub("format: tar.zst", "format: tar.gz"), ("pack", "docker")),
    ("recipe: docker.base_image", _sub("debian:bookworm-slim", "debian:trixie-slim"),
     ("docker",)),
    ("recipe: docker.user", _sub("user: envbuild", "user: someone"), ("docker",)),
    ("recipe: docker.uid", _sub("uid: 1000", "uid: 1001"), ("docker",)),
    ("recipe: docker.prefix", _sub("prefix: /opt/env", "prefix: /opt/other"), ("docker",)),
    ("recipe: jupyter.display_name (no kernel)",
     _sub("name: tiny\n", "name: tiny\njupyter: {display_name: X}\n"), ()),
    ("recipe: variables", _sub('EB_ONE: "1"', 'EB_ONE: "2"'), ALL),
    ("recipe: dependencies", _sub("  - python-dateutil\n", "  - python-dateutil\n  - pip\n"),
     ALL),
    ("recipe: exclude-newer", _sub("name: tiny\n", "name: tiny\nexclude-newer: 2100-01-01\n"),
     ALL),
    ("recipe: virtual_packages",
     _sub("name: tiny\n", "name: tiny\nvirtual_packages: {__glibc: '2.40'}\n"), ALL),
    ("envbuild.toml: a comment", _append("# a comment\n"), ()),
    ("envbuild.toml: [builds] keep", _append("[builds]\nkeep = 4\n"), ()),
    ("envbuild.toml: [nightly] mode", _append('[nightly]\nmode = "propose"\n'), ()),
    ("envbuild.toml: [offline] requirements", _append('[offline]\nrequirements = ["pip"]\n'),
     ()),
    ("envbuild.toml: [lock] channel_alias",
     _append('[lock]\nchannel_alias = "https://conda.example.com"\n'), ALL),
]  # fmt: skip


def _stages(proc_out: list[str]) -> tuple[str, ...]:
    return tuple(re.sub(r":.*", "", t) for t in proc_out)


@pytest.mark.slow
def test_each_input_reruns_exactly_its_stages(make_project) -> None:  # type: ignore[no-untyped-def]
    project: Project = make_project(recipes={"tiny": RECIPE})
    assert _stages(Project.executed(project.doit("docker", env=NO_ENGINE))) == ALL
    wrong = []
    for what, edit, expected in TABLE:
        edit(project.root)
        ran = _stages(Project.executed(project.doit("docker", env=NO_ENGINE)))
        again = _stages(Project.executed(project.doit("docker", env=NO_ENGINE)))
        if ran != expected or again:
            wrong.append(f"{what}: ran {ran}, expected {expected}; second run {again}")
    assert not wrong, "\n".join(wrong)
    root = project.root
    assert list((root / "dist").glob("tiny-*.tar.gz")), "the pack.format change made no .tar.gz"
    dockerfile = (root / "docker" / "tiny" / "Dockerfile").read_text()
    assert "FROM debian:trixie-slim" in dockerfile and "/opt/other" in dockerfile


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("imports: [dateutil]", "imports: [dateutil, nonexistent_module_zz]", "nonexistent_mod"),
        ("print(1)", "import sys; sys.exit(3)", "exit"),
    ],
)
def test_a_failing_smoke_edit_fails_smoke_and_stops_pack(
    make_project, old: str, new: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    project: Project = make_project(recipes={"tiny": RECIPE})
    project.doit("pack")
    _sub(old, new)(project.root)
    failed = project.doit("pack", check=False)
    assert failed.returncode != 0
    assert message in failed.stdout + failed.stderr
    assert _stages(Project.executed(failed)) == ("smoke",)
