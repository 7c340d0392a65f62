"""Issue 11: envbuild as a tool for any repository: a wheel with its templates, the `envbuild`
command (a front end over the same doit tasks), `envbuild init`, a two-line dodo.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from envbuild.cli import doit_arguments, init, main
from envbuild.cli.verbs import UsageError
from envbuild.errors import EnvBuildError


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["build", "ml"], ["build", "env=ml"]),
        (["build", "ml", "gpu"], ["build", "env=ml,gpu"]),
        (["status", "--json"], ["status", "--json"]),
        (["lock", "ml", "update=numpy"], ["lock", "update=numpy", "env=ml"]),
        (["doctor", "prefix=/x"], ["doctor", "prefix=/x"]),
        (["list", "--all"], ["list", "--all"]),
        (["info", "build:ml"], ["info", "build:ml"]),
        (["build:ml"], ["build:ml"]),
        # the grammar: envbuild VERB [NAME...] [--option [VALUE]]
        (["lock", "ml", "--update", "numpy"], ["lock", "update=numpy", "env=ml"]),
        (["lock", "--update=numpy", "--update", "scipy"], ["lock", "update=numpy,scipy"]),
        (["doctor", "--prefix", "/x", "--json"], ["doctor", "--json", "prefix=/x"]),
        (
            ["adopt", "--prefix", "/x", "--name", "ml", "--force"],
            ["adopt", "prefix=/x", "name=ml", "force=1"],
        ),
        (["gc", "--dry-run"], ["gc", "--dry-run"]),
        (["ci_merge", "--dir", "a"], ["ci_merge", "--dir", "a"]),
        (["build", "ml", "-n", "2"], ["build", "-n", "2", "env=ml"]),  # doit's own option
        (["rollback", "ml"], ["rollback", "env=ml"]),
    ],
)
def test_arguments_become_doit_arguments(args: list[str], expected: list[str]) -> None:
    assert doit_arguments(args) == expected


def test_init_writes_a_project_and_never_overwrites(tmp_path: Path) -> None:
    written = init(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        ".gitignore", "dodo.py", "envbuild.toml", "recipes/example.yml"]  # fmt: skip
    assert len((tmp_path / "dodo.py").read_text().strip().splitlines()) == 2
    assert "/envs/" in (tmp_path / ".gitignore").read_text()
    ignored = [ln for ln in (tmp_path / ".gitignore").read_text().splitlines() if ln[:1] != "#"]
    assert not any("locks" in ln for ln in ignored)  # lockfiles are committed
    (tmp_path / "recipes" / "example.yml").write_text("# mine\n")
    with pytest.raises(EnvBuildError, match="already exist"):
        init(tmp_path)
    assert (tmp_path / "recipes" / "example.yml").read_text() == "# mine\n"


def test_init_ci_adds_the_scheduled_workflow(tmp_path: Path) -> None:
    written = init(tmp_path, ci=True)
    workflow = tmp_path / ".github" / "workflows" / "envbuild-nightly.yml"
    assert workflow in written and "doit relock" in workflow.read_text()
    assert "run: python -m pip install envbuild" in workflow.read_text()  # not "install ."
    assert not (tmp_path / "deploy").exists()  # only what was asked for


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gc", "ml"], "envbuild gc: takes no NAME, got 'ml'"),
        (["adopt", "--prefix"], "envbuild adopt: --prefix needs a value (PATH)"),
        (["status", "--jsn"], "envbuild status: unknown option --jsn (did you mean '--json'?)"),
        (["biuld", "ml"], "envbuild: unknown command 'biuld' (did you mean 'build'?)"),
    ],
)
def test_a_command_line_off_the_grammar_is_one_line(args: list[str], message: str) -> None:
    with pytest.raises(UsageError) as e:
        doit_arguments(args)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_an_unknown_verb_is_one_line_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside a project and inside one (where the project's tasks are asked too)."""
    monkeypatch.chdir(tmp_path)
    assert main(["stauts"]) == 2
    err = capsys.readouterr().err
    assert err == "envbuild: unknown command 'stauts' (did you mean 'status'?); " \
        "`envbuild --help` lists them\n"  # fmt: skip
    init(tmp_path)
    assert main(["-q", "pakc", "example"]) == 2
    assert "(did you mean 'pack'?)" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"envbuild {version('envbuild')}\n"
