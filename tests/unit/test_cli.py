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
        # doit's own run options go before the task, where doit reads them
        (["build", "ml", "-n", "2"], ["-n", "2", "build", "env=ml"]),
        (
            ["build", "-a", "ml", "-n2", "--continue"],
            ["-a", "-n2", "--continue", "build", "env=ml"],
        ),
        (["status", "--json", "-s"], ["-s", "status", "--json"]),
        (["build", "--", "-odd"], ["build", "env=-odd"]),  # after --, NAMEs only
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
        # issue 32, hostile review: an option neither the verb's nor doit's is refused here,
        # not handed to doit (which printed its whole option table and exited 3)
        (["build", "--frobnicate"], "envbuild build: unknown option --frobnicate; `envbuild"),
        (["build", "-x", "ml"], "envbuild build: unknown option -x;"),
        (["build", "--\x1b[31m"], r"envbuild build: unknown option '--\x1b[31m';"),
        # a NAME cannot hold '=': a key=value the tasks never read is refused, not ignored
        # (it built every recipe)
        (["build", "ml=1"], "envbuild build: 'ml=1': no variable 'ml'; the variables are env"),
        (["lock", "updte=numpy"], "envbuild lock: 'updte=numpy': no variable 'updte' (did you"),
        (["gc", "--", "x"], "envbuild gc: takes no NAME, got 'x'"),
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
    (tmp_path / "envbuild.toml").write_text("[[[bad\n")  # a project that does not load
    assert main(["stauts"]) == 2
    assert "(did you mean 'status'?)" in capsys.readouterr().err


def test_an_unknown_leading_option_is_one_line_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """doit's spelling (run options before the task) is checked against doit's run options,
    inside a project or not."""
    monkeypatch.chdir(tmp_path)
    assert main(["--frobnicate"]) == 2
    assert capsys.readouterr().err == (
        "envbuild: unknown option --frobnicate; `envbuild --help` lists the options\n"
    )
    init(tmp_path)
    assert main(["-Z", "build"]) == 2
    assert capsys.readouterr().err.startswith("envbuild: unknown option -Z;")


@pytest.mark.parametrize(("doit", "envbuild"), [(0, 0), (1, 1), (2, 1), (3, 2)])
def test_doit_s_exit_status_becomes_envbuild_s(doit: int, envbuild: int) -> None:
    """0 done, 1 a failure (a task failed, or one it needs did: doit's 2), 2 a command line
    doit could not use (doit's 3), as for envbuild's own usage errors."""
    from envbuild.cli.entry import exit_status

    assert exit_status(doit) == envbuild


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"envbuild {version('envbuild')}\n"


def test_the_version_is_declared_once() -> None:
    """Hostile review: ``envbuild --version`` says the installed distribution's version
    (pyproject.toml) and, in a source tree without one, ``envbuild.__version__``: the two
    must not drift apart."""
    import tomllib

    from envbuild import __version__

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert tomllib.loads(pyproject.read_text())["project"]["version"] == __version__
