"""Hostile input: values that reach a Dockerfile, shell or file name are refused when the
recipe loads; recipes, lockfiles and the config are read only if they are regular files of
bounded size; ``extends`` is resolved in linear time."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envbuild.errors import ConfigError, LockError, RecipeError
from envbuild.lock.lockfile import read_packages
from envbuild.project import load_project
from envbuild.recipe.load import find_recipe, load_recipe
from envbuild.stages import lock as lock_stage

HEAD = "name: ml\ndependencies: [python]\n"


@contextlib.contextmanager
def within(seconds: int) -> Iterator[None]:
    """Fail (rather than hang the suite) if the body takes longer than ``seconds``."""

    def expired(*_: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _recipe(tmp_path: Path, text: str, name: str = "ml") -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    return path


INJECTIONS = [
    ('docker: {prefix: "/opt/env\\nRUN echo INJECTED; id #"}', r"docker\.prefix: .*absolute path"),
    ('docker: {prefix: "/opt/env dir"}', r"docker\.prefix"),
    ('docker: {prefix: "/opt/$HOME"}', r"docker\.prefix"),
    (
        'docker: {base_image: "debian\\nRUN echo INJECTED"}',
        r"docker\.base_image: .*image reference",
    ),
    ('docker: {base_image: "debian:bookworm-slim AS x"}', r"docker\.base_image"),
    ('docker: {base_image: "Debian"}', r"docker\.base_image"),
    ('docker: {user: "env\\nbuild"}', r"docker\.user: .*non-root user name"),
    ('variables: {X: "a\\nRUN echo INJECTED"}', r"variables\.X: .*control character '\\n'"),
    ('variables: {X: "a\\u0000b"}', r"variables\.X: .*control character"),
    ('variables: {"X\\n": "a"}', r"variables\.'X\\n': not a valid environment variable name"),
    ('smoke: {imports: ["json\\nos"]}', r"smoke\.imports\[0\]: .*not a Python module name"),
]


@pytest.mark.parametrize(("extra", "message"), INJECTIONS)
def test_values_reaching_a_dockerfile_or_shell_are_refused(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(RecipeError, match=message) as e:
        load_recipe(_recipe(tmp_path, HEAD + extra + "\n"))
    assert "ml.yml" in str(e.value)


def test_harmless_values_still_load(tmp_path: Path) -> None:
    text = HEAD + (
        'docker: {base_image: "registry.example.com:5000/team/base:1.0", prefix: /opt/my-env.1,'
        " user: app_1}\n"
        "variables: {X: 'a \"quoted\" $value with spaces', N: 3}\n"
    )
    r = load_recipe(_recipe(tmp_path, text))
    assert r.docker.base_image == "registry.example.com:5000/team/base:1.0"
    assert dict(r.variables)["X"] == 'a "quoted" $value with spaces'


@pytest.mark.parametrize("name", ["Zz_Upper", "a..b", "trailing-", "_x"])
def test_recipe_names_are_image_repository_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(RecipeError, match=r"not a valid environment name.*lower-case"):
        load_recipe(_recipe(tmp_path, f"name: {name}\ndependencies: [python]\n", name))


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory"])
def test_a_recipe_that_is_not_a_regular_file_is_refused_unread(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "ml.yml"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with within(10), pytest.raises(RecipeError, match=r"ml\.yml: cannot read: .*regular file"):
        load_recipe(path)


def test_an_oversized_recipe_is_refused(tmp_path: Path) -> None:
    path = _recipe(tmp_path, HEAD + "#" * (2 << 20) + "\n")
    with pytest.raises(RecipeError, match="over the limit"):
        load_recipe(path)


def test_a_fifo_recipe_does_not_hang_the_up_to_date_check(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    os.mkfifo(tmp_path / "recipes" / "ml.yml")
    with within(10):
        assert not lock_stage.lock_is_fresh(tmp_path, "ml")


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_config_and_lockfile_that_are_not_regular_files(tmp_path: Path, kind: str) -> None:
    for f in (tmp_path / "envbuild.toml", tmp_path / "x.conda-lock.yml"):
        f.symlink_to("/dev/zero") if kind == "dev-zero" else os.mkfifo(f)
    with within(10):
        with pytest.raises(ConfigError, match=r"envbuild\.toml: cannot read"):
            load_project(tmp_path)
        with pytest.raises(LockError, match=r"x\.conda-lock\.yml"):
            read_packages(tmp_path / "x.conda-lock.yml")


def test_a_30_level_extends_diamond_loads_in_linear_time(tmp_path: Path) -> None:
    """Level k has two recipes, each extending both of level k-1: 2^30 paths, 60 files."""
    _recipe(tmp_path, "dependencies: [python]\nsmoke: {imports: [json]}\n", "l0a")
    _recipe(tmp_path, "dependencies: [pip]\n", "l0b")
    for k in range(1, 31):
        for side in "ab":
            _recipe(tmp_path, f"extends: [l{k - 1}a, l{k - 1}b]\n", f"l{k}{side}")
    _recipe(tmp_path, "extends: [l30a, l30b]\ndependencies: [numpy]\n", "top")
    start = time.perf_counter()
    with within(60):
        r = load_recipe(tmp_path / "top.yml")
    seconds = time.perf_counter() - start
    print(f"30-level extends diamond loaded in {seconds:.3f} s")
    assert set(r.dependencies) == {"python", "pip", "numpy"}
    assert len(r.sources) == 63
    assert seconds < 5


def test_names_from_the_command_line_or_recipe_files_are_escaped(tmp_path: Path) -> None:
    """Selected names become doit task names, log lines and status cells, printed as they are:
    an ESC (clear the screen, recolour) in ``env=`` or in a recipe's file name comes back
    escaped, and no longer a valid environment name."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "\x1b[2Jevil.yml").write_text("name: x\n")
    (tmp_path / "recipes" / "tiny.yml").write_text("name: tiny\n")
    project = load_project(tmp_path)
    assert project.selected(None) == ["\\x1b[2Jevil", "tiny"]
    assert project.selected("tiny, \u202eyni\x1b, tiny") == ["tiny", "\\u202eyni\\x1b"]
    with pytest.raises(RecipeError, match="is not a valid environment name"):
        find_recipe(tmp_path / "recipes", project.selected(None)[0], [])


def test_masking_credentials_in_a_long_message_is_linear() -> None:
    """Hostile review (issue 32): ``scrub`` (every log line, every message shown from a
    registry, the nightly page's text) restarted its URL-scheme search inside every run of
    letters: 100,000 letters took 50 s. A scheme glued to a word is still masked."""
    from envbuild.util.redact import scrub

    with within(5):
        assert scrub("x" * 1_000_000) == "x" * 1_000_000
        assert scrub("a://" * 200_000 + "b:" * 200_000).endswith("b:")
    assert scrub("at xhttps://u:p@h/ git+ssh://k@h") == "at xhttps://***@h/ git+ssh://***@h"
