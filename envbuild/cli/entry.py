"""The ``envbuild`` command: ``envbuild VERB [NAME...] [--option]`` over the same doit task
graph as a project's ``dodo.py`` (https://pydoit.org/cmd-run.html), plus envbuild's own verbs
(``init``, ``schema``, ``completion``, ``pull``). The verbs and their options are the table in
:mod:`envbuild.cli.verbs`; the project is the nearest directory, upwards from here, that holds
``envbuild.toml``. ``--version``, ``completion`` and a verb's ``--help`` import neither doit
nor the project; ``--help`` imports doit for its own commands' summaries.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from envbuild.cli import help as helptext
from envbuild.cli.scaffold import init, print_schema
from envbuild.cli.verbs import (
    BY_NAME,
    DOIT_VERBS,
    UsageError,
    Verb,
    known_flag,
    to_doit,
    verb,
)
from envbuild.errors import EnvBuildError, ReaderLeft
from envbuild.util import progress
from envbuild.util.progress import QUIET_ENV

DOIT_COMMANDS = DOIT_VERBS  # the old name


def version() -> str:
    """The installed distribution's version (importlib.metadata), else the package's."""
    from importlib import metadata

    try:
        return metadata.version("envbuild")
    except metadata.PackageNotFoundError:  # run from a source tree
        from envbuild import __version__

        return __version__


def find_root(start: Path) -> Path:
    """The nearest directory from ``start`` upwards holding ``envbuild.toml``. Raises
    EnvBuildError if there is none."""
    from envbuild.project import CONFIG_FILE

    for d in (start, *start.parents):
        if (d / CONFIG_FILE).is_file():
            return d
    msg = (
        f"{start}: not inside an envbuild project (no {CONFIG_FILE} here or above); "
        "run `envbuild init`"
    )
    raise EnvBuildError(msg)


def doit_arguments(args: list[str]) -> list[str]:
    """``envbuild`` arguments -> doit's: ``build ml gpu`` -> ``build env=ml,gpu``,
    ``lock ml --update numpy`` -> ``lock update=numpy env=ml``; doit's own commands, a
    leading option and a ``task:subtask`` pass through. Raises UsageError."""
    if not args or args[0] in DOIT_VERBS or args[0].startswith("-") or ":" in args[0]:
        return args
    return to_doit(verb(args[0]), args[1:], *_doit_run_options())


def _doit_run_options() -> tuple[frozenset[str], frozenset[str]]:
    """doit's run options (https://pydoit.org/cmd-run.html), from doit itself: those that
    take a value (``-n``, ``--process``, ``--db-file``) and those that take none (``-a``)."""
    from doit.cmd_base import DoitCmdBase
    from doit.cmd_run import Run

    value: set[str] = set()
    switch: set[str] = set()
    for opt in (*DoitCmdBase.base_options, *Run.cmd_options):
        flags = {f"-{opt['short']}" if opt.get("short") else "", f"--{opt['long']}"}
        (switch if opt.get("type") is bool else value).update(flags - {"", "--"})
    return frozenset(value), frozenset(switch)


def _check_leading_options(args: list[str]) -> None:
    """doit's spelling with its run options first (``envbuild -a build``): each word before
    the first that is not an option must be one of doit's run options. Raises UsageError."""
    takes_value, switches = _doit_run_options()
    words = iter(args)
    for word in words:
        if not word.startswith("-") or word == "-":
            return
        flag, eq, _ = word.partition("=")
        if flag in takes_value and not eq:
            next(words, "")
        elif not known_flag(flag, takes_value, switches):
            what = flag if flag.isprintable() else repr(flag)
            msg = f"envbuild: unknown option {what}; `envbuild --help` lists the options"
            raise UsageError(msg)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``envbuild`` console script; returns the exit code: 0, 1 for a
    failure (one line on stderr), 2 for a command line that does not fit the grammar."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "-q" in args or "--quiet" in args:  # silence progress (errors still show)
        os.environ[QUIET_ENV] = "1"
        args = [a for a in args if a not in ("-q", "--quiet")]
    try:
        return _dispatch(args)
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    except EnvBuildError as e:
        print(f"envbuild: {e}", file=sys.stderr)
        return 1
    except (BrokenPipeError, ReaderLeft):  # `envbuild --help | head`: the reader left
        progress.silence_stdout()
        return 141  # as a shell reports a process ended by SIGPIPE


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(helptext.overview(_doit_summaries()))
        return 0
    if args[0] == "--version":
        print(f"envbuild {version()}")
        return 0
    name, rest = args[0], args[1:]
    if name.startswith("-"):
        _check_leading_options(args)
    if name.startswith("-") or ":" in name or name in DOIT_VERBS:
        return _run_doit(args)  # doit's spelling: options first, a subtask, doit's commands
    v = _verb_or_task(name)
    if v is None:
        return _run_doit(args)  # a task of the project the table does not know (yet)
    if "-h" in rest or "--help" in rest:
        print(helptext.verb_help(v))
        return 0
    if v.kind == "own":
        return _own(v, rest)
    return _run_doit(to_doit(v, rest, *_doit_run_options()))


def _verb_or_task(name: str) -> Verb | None:
    """The table's verb ``name``; None if it is not in the table but the project (found from
    the working directory) has a public task of that name. Raises UsageError otherwise,
    also when there is no project or it does not load (a typo is named as one, not as the
    project's error)."""
    try:
        return verb(name)
    except UsageError as unknown:
        try:
            tasks = _task_names(find_root(Path.cwd()))
        except EnvBuildError:
            raise unknown from None
        if name in tasks:
            return None
        raise


def _task_names(root: Path) -> set[str]:
    """The public task names of the project at ``root`` (doit's loader, as ``doit list``)."""
    from doit import loader

    from envbuild import layout
    from envbuild.graph.factory import tasks_for

    layout.project_at(root)
    return {t.name for t in loader.load_tasks(tasks_for(root)) if not t.name.startswith("_")}


def _own(v: Verb, rest: list[str]) -> int:
    """envbuild's own verbs: they need no project."""
    if v.name == "pull":  # a published environment at a path
        from envbuild.deliver.pull import main as pull_main

        return pull_main(rest, usage=helptext.usage(v).removeprefix("usage: "))
    if v.name == "schema":
        return print_schema(rest)
    if v.name == "completion":
        from envbuild.cli.completion import script

        if len(rest) != 1 or rest[0] not in v.choices:
            raise UsageError(helptext.usage(v))
        print(script(rest[0]), end="")
        return 0
    if any(a != "--ci" for a in rest):  # init
        raise UsageError(helptext.usage(v))
    for path in init(Path.cwd(), ci="--ci" in rest):
        print(f"wrote {path.relative_to(Path.cwd())}")
    return 0


def _run_doit(doit_args: list[str]) -> int:
    """Run doit's command line ``doit_args`` on the project found from the working directory."""
    from envbuild import layout

    root = find_root(Path.cwd())
    layout.project_at(root)  # envbuild.toml's errors: one line, exit 1
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from envbuild.graph.factory import tasks_for

    doit = DoitMain(
        ModuleTaskLoader(tasks_for(root)), config_filenames=(), extra_config=doit_files(root)
    )
    return exit_status(int(doit.run(doit_args)))


def exit_status(doit_status: int) -> int:
    """envbuild's exit status for doit's (https://pydoit.org/cmd-run.html, ``DoitMain.run``):
    a task that failed (1) or could not run because one it needs failed (2) -> 1; doit could
    not start on the command line (3) -> 2, as for any command line off the grammar."""
    return {0: 0, 1: 1, 2: 1, 3: 2}.get(doit_status, 1)


def _doit_summaries() -> dict[str, str]:
    """doit's own commands and what doit says they do (``doc_purpose``)."""
    from doit.doit_cmd import DoitMain

    found = {c.get_name(): str(c.doc_purpose) for c in DoitMain.DOIT_CMDS}
    return {name: found.get(name, "") for name in DOIT_VERBS}


def doit_files(root: Path) -> dict[str, dict[str, Any]]:
    """doit's own settings from the project's ``pyproject.toml`` (``[tool.doit]``) and
    ``doit.cfg`` (https://pydoit.org/configuration.html), which doit reads from the working
    directory, as ``DoitMain``'s ``extra_config``: ``{section: {option: value}}``."""
    from doit.doit_cmd import DoitConfig

    files = DoitConfig()
    sections: dict[str, dict[str, Any]] = {}
    toml = files.load_config_toml(str(root / "pyproject.toml"), "tool.doit")
    ini = files.load_config_ini([str(root / "doit.cfg")])
    for section, values in [*toml.items(), *((s, dict(ini[s])) for s in ini.sections())]:
        sections.setdefault(section, {}).update(values)
    return sections


__all__ = ["BY_NAME", "doit_arguments", "find_root", "init", "main", "version"]
