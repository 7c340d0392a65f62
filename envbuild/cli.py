"""The ``envbuild`` command: a thin front end over the same doit task graph as a project's
``dodo.py`` (https://pydoit.org/cmd-run.html), plus ``envbuild init``.

    envbuild init [--ci]              start a project in the current (empty) directory
    envbuild pull REF --prefix PATH   put a published environment at PATH (no project needed)
    envbuild schema recipe|config [--path]   print the JSON Schema of recipes or envbuild.toml
                                      (or where the packaged file is), for editors
    envbuild <task> [NAME...] [opts]  e.g. envbuild lock, envbuild build ml, envbuild status
    envbuild list | info | forget | clean | help ...   doit's own commands
    envbuild --help                   this text and the tasks, with their docs
    envbuild -q ...                   no progress output (errors still show)

Recipe names after a task become ``env=NAME,NAME``; ``key=value`` and ``--options`` pass
through to doit unchanged. The project is the nearest directory, upwards from here, that holds
``envbuild.toml``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from envbuild import layout
from envbuild.errors import EnvBuildError
from envbuild.project import CONFIG_FILE
from envbuild.util import schema
from envbuild.util.fs import atomic_write
from envbuild.util.progress import QUIET_ENV

DOIT_COMMANDS = ("list", "info", "forget", "clean", "help", "ignore", "dumpdb", "strace", "run")

INIT_TOML = """\
# envbuild project settings (https://github.com/envbuild/envbuild#readme). All optional.

# [lock]
# platforms = ["linux-64"]          # for recipes that name none (default: linux-64)
# exclude-newer = "2026-01-31"      # solve only packages published before this (UTC)

# [mirrors]                         # where channels are fetched from (transport only;
# conda-forge = "https://mirror.example.org/conda-forge"   # lockfiles keep canonical URLs)

# [builds]
# keep = 3                          # builds kept per environment (for rollback)
# link = "auto"                     # or "copy"
# register = true                   # list envs/<name> in ~/.conda/environments.txt

# [nightly]
# mode = "promote"                  # or "propose": test the candidate, promote nothing
"""
INIT_RECIPE = """\
# An example environment: edit it, rename it, add more files like it.
name: example
channels: [conda-forge]
dependencies:
  - python >=3.10
  - pip
smoke:
  imports: [json, sqlite3]
  commands:
    - python --version
"""
INIT_DODO = """\
# doit tasks of this envbuild project (`doit list`; or the `envbuild` command)
from envbuild.dodo import *  # noqa: F403
"""
INIT_GITIGNORE = """\
# envbuild: built things are not committed; lockfiles (locks/) and recipes are
/envs/
/build/
/dist/
/docker/
/reports/
.doit.db*
"""


def init(directory: Path, ci: bool = False) -> list[Path]:
    """Write a new project into ``directory``: ``envbuild.toml`` (commented),
    ``recipes/example.yml``, a two-line ``dodo.py``, ``.gitignore`` and, with ``ci``, the
    scheduled workflow. Returns the files written. Raises EnvBuildError, writing nothing, if
    any of them exists."""
    files = {
        directory / CONFIG_FILE: INIT_TOML,
        directory / "recipes" / "example.yml": f"{schema_comment()}\n{INIT_RECIPE}",
        directory / "dodo.py": INIT_DODO,
        directory / ".gitignore": INIT_GITIGNORE,
    }
    taken = [p for p in files if p.exists()]
    if taken:
        names = ", ".join(str(p.relative_to(directory)) for p in taken)
        msg = f"{directory}: {names} already exist(s); envbuild init writes nothing over them"
        raise EnvBuildError(msg)
    for path, text in files.items():
        atomic_write(path, text)
    written = list(files)
    if ci:
        from envbuild.ops import schedule
        from envbuild.project import load_project
        from envbuild.recipe.load import load_recipe

        project = load_project(directory)
        recipes = [load_recipe(directory / "recipes" / "example.yml", project.platforms)]
        workflow = directory / schedule.OUTPUTS["github-nightly.yml.j2"]
        atomic_write(workflow, schedule.render(project, recipes)[workflow])
        written.append(workflow)
    return written


def schema_comment() -> str:
    """The first line of a recipe ``envbuild init`` writes: yaml-language-server's modeline
    (https://github.com/redhat-developer/yaml-language-server#using-inlined-schema) naming
    the packaged recipe schema, so an editor completes and checks the file."""
    return f"# yaml-language-server: $schema={schema.schema_file('recipe').as_uri()}"


def print_schema(args: list[str]) -> int:
    """``envbuild schema recipe|config [--path]``: the schema's JSON on stdout, or with
    ``--path`` its packaged file. Returns the exit code (2 for a usage error)."""
    names = [a for a in args if a != "--path"]
    if len(names) != 1 or names[0] not in schema.NAMES:
        print("usage: envbuild schema recipe|config [--path]", file=sys.stderr)
        return 2
    path = schema.schema_file(names[0])
    print(
        path if "--path" in args else path.read_text(encoding="utf-8"),
        end="\n" if "--path" in args else "",
    )
    return 0


def find_root(start: Path) -> Path:
    """The nearest directory from ``start`` upwards holding ``envbuild.toml``. Raises
    EnvBuildError if there is none."""
    for d in (start, *start.parents):
        if (d / CONFIG_FILE).is_file():
            return d
    msg = (
        f"{start}: not inside an envbuild project (no {CONFIG_FILE} here or above); "
        "run `envbuild init`"
    )
    raise EnvBuildError(msg)


def doit_arguments(args: list[str]) -> list[str]:
    """``envbuild`` arguments -> doit's: ``build ml gpu`` -> ``build env=ml,gpu``."""
    if not args or args[0] in DOIT_COMMANDS or args[0].startswith("-"):
        return args
    task, rest = args[0], args[1:]
    names = [a for a in rest if not a.startswith("-") and "=" not in a]
    other = [a for a in rest if a not in names]
    return [task, *other, *([f"env={','.join(names)}"] if names else [])]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``envbuild`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "-q" in args or "--quiet" in args:  # silence progress (errors still show)
        os.environ[QUIET_ENV] = "1"
        args = [a for a in args if a not in ("-q", "--quiet")]
    try:
        if args[:1] == ["pull"]:  # needs no project: a published environment at a path
            from envbuild.deliver.pull import main as pull_main

            return pull_main(args[1:])
        if args[:1] == ["schema"]:
            return print_schema(args[1:])
        if args[:1] == ["init"]:
            if any(a not in ("--ci",) for a in args[1:]):
                print("usage: envbuild init [--ci]", file=sys.stderr)
                return 2
            for path in init(Path.cwd(), ci="--ci" in args):
                print(f"wrote {path.relative_to(Path.cwd())}")
            return 0
        root = find_root(Path.cwd())
        layout.project_at(root)  # envbuild.toml's errors: one line, exit 1
    except EnvBuildError as e:
        print(f"envbuild: {e}", file=sys.stderr)
        return 1
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from envbuild.graph.factory import tasks_for

    doit = DoitMain(
        ModuleTaskLoader(tasks_for(root)), config_filenames=(), extra_config=doit_files(root)
    )
    if args[:1] in (["--help"], ["-h"], []):
        print(__doc__)
        return doit.run(["list"])
    return doit.run(doit_arguments(args))


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


if __name__ == "__main__":
    raise SystemExit(main())
