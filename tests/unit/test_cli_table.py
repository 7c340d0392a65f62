"""Issue 32, one grammar: the table of verbs (envbuild/cli/verbs.py) is the task graph's, and
the help and the completion scripts are generated from it."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from envbuild.cli import init, main
from envbuild.cli.completion import script
from envbuild.cli.verbs import BY_NAME, DOIT_VERBS, VERBS

PACKAGE = Path(__file__).resolve().parent.parent.parent / "envbuild"


def test_the_table_has_every_task_and_each_task_parameter(tmp_path: Path) -> None:
    """The task verbs are exactly the public doit tasks of a project (as ``doit list`` loads
    them), each doit task parameter is an option of its verb, and each option that becomes a
    command-line variable is one the tasks read: a variable its stage declares
    (``Stage(variables=("update",))``, read by the graph factory) or a ``get_var("force"...``)."""
    from doit import loader

    from envbuild.graph.factory import tasks_for
    from envbuild.stages import registry

    init(tmp_path)
    tasks = loader.load_tasks(tasks_for(tmp_path))
    public = {t.name for t in tasks if not t.name.startswith("_") and ":" not in t.name}
    assert {v.name for v in VERBS if v.kind == "task"} == public
    for t in tasks:
        for param in t.params:
            assert BY_NAME[t.name].option(f"--{param['long']}"), (t.name, param["long"])
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    for v in VERBS:
        for o in v.options:
            if v.kind == "task" and o.doit:
                declared = registry.is_stage(v.name) and o.doit in registry.get(v.name).variables
                assert declared or f'get_var("{o.doit}"' in source, (v.name, o.flag)


def test_pull_options_are_the_table_s(capsys: pytest.CaptureFixture[str]) -> None:
    """``envbuild pull`` parses its own command line (argparse, deliver/pull.py): the same
    options as the table's ``pull``."""
    from envbuild.deliver.pull import main as pull_main

    with pytest.raises(SystemExit):
        pull_main(["--help"])
    flags = set(re.findall(r"(--[a-z-]+)", capsys.readouterr().out)) - {"--help"}
    assert flags == {o.flag for o in BY_NAME["pull"].options}


def test_help_lists_every_verb_in_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^  (\w+) ", out, re.MULTILINE)
    assert listed == [*(v.name for v in VERBS), *DOIT_VERBS]
    assert "``" not in out and ":mod:" not in out
    assert "doit VERB env=NAME" in out  # the make-style equivalent, said once
    assert "list tasks from dodo file" in out  # doit's own words for its commands


@pytest.mark.parametrize("name", [v.name for v in VERBS])
def test_each_verb_has_help_with_its_options(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no project needed, nothing written
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: envbuild {name}") and "``" not in out
    for o in BY_NAME[name].options:
        assert re.search(rf"^  {re.escape(o.flag)}\b", out, re.MULTILINE), o.flag
    assert ("make-style equivalent: doit " + name in out) == (BY_NAME[name].kind == "task")
    assert list(tmp_path.iterdir()) == []


def test_lock_help_maps_its_option_onto_doit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", "-h"]) == 0
    out = capsys.readouterr().out
    assert "usage: envbuild lock [NAME...] [--update PKG[,PKG]]" in out
    assert "doit lock env=NAME[,NAME] update=PKG[,PKG]" in out


def test_a_closed_pipe_ends_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """``envbuild --help | head -1``: the write that finds the pipe closed ends envbuild with
    the status a shell gives SIGPIPE, no traceback."""

    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["--help"]) == 141


def test_a_closed_pipe_during_a_task_is_not_a_task_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``envbuild status | head -1`` exited 1: doit made the BrokenPipeError of the task's
    print a failed task. The action boundary lets it through as ReaderLeft (a BaseException,
    past doit) and envbuild ends with 141, as for ``--help``."""
    from envbuild.cli import entry
    from envbuild.errors import ReaderLeft
    from envbuild.graph import actions, tasks

    def prints(*args: str) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(actions, "executor", lambda stage: prints)
    with pytest.raises(ReaderLeft):
        tasks.guard("status", ".", "ml")

    def dispatch(args: list[str]) -> int:
        raise ReaderLeft

    monkeypatch.setattr(entry, "_dispatch", dispatch)
    assert main(["status"]) == 141


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_come_from_the_table(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    text = capsys.readouterr().out
    assert text == script(shell)
    for v in VERBS:
        assert re.search(rf"\b{v.name}\b", text), v.name
        for o in v.options:
            assert o.flag in text, (v.name, o.flag)


def test_completion_for_another_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "fish"]) == 2
    assert capsys.readouterr().err == "usage: envbuild completion bash|zsh\n"


def test_pull_s_errors_show_the_same_usage_as_its_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Hostile review: ``envbuild pull`` with no arguments showed argparse's own usage line
    (``[-h] --prefix PREFIX ... [reference]``), a second grammar; its help said ``[--prefix
    PATH]`` (optional) and described REF with nothing."""
    assert main(["pull", "--help"]) == 0
    help_out = capsys.readouterr().out
    usage = help_out.split("\n\n")[0]
    assert usage.startswith("usage: envbuild pull [REF] --prefix PATH [--rollback]")
    assert re.search(r"^  \[REF\] +the published image", help_out, re.MULTILINE)
    with pytest.raises(SystemExit) as e:
        main(["pull"])
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith(usage + "\nenvbuild pull: error:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["doctor", "--json"], "envbuild doctor: --prefix PATH is required"),
        (["adopt", "--prefix", "/x"], "envbuild adopt: --name NAME is required"),
    ],
)
def test_a_required_option_missing_is_a_usage_error(args: list[str], message: str) -> None:
    """It was a failed doit task naming doit's spelling (``doit doctor prefix=PATH``), exit
    1; doit's spelling of the option (``prefix=/x``) still counts."""
    from envbuild.cli import doit_arguments
    from envbuild.cli.verbs import UsageError

    with pytest.raises(UsageError, match=re.escape(message)):
        doit_arguments(args)
    assert doit_arguments(["doctor", "prefix=/x"]) == ["doctor", "prefix=/x"]
    assert "usage: envbuild doctor --prefix PATH [--json]" in help_of("doctor")


def help_of(name: str) -> str:
    from envbuild.cli import help as helptext

    return helptext.verb_help(BY_NAME[name])


def test_completion_offers_only_characters_a_recipe_name_may_hold() -> None:
    """The scripts drop a ``recipes/*.yml`` whose name has any character outside
    ``NAME_CHARS`` (``$(...)``, a space, a glob): the set is exactly the name rule's."""
    import string

    from envbuild.cli.completion import NAME_CHARS
    from envbuild.recipe.model import NAME_RE

    allowed = {c for c in string.printable + "éİ\u202e" if NAME_RE.match(f"a{c}a")}
    assert allowed == set(NAME_CHARS)
    for shell in ("bash", "zsh"):
        assert NAME_CHARS in script(shell)
