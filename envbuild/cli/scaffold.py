"""``envbuild init`` and ``envbuild schema``: the files of a new project, and the packaged
JSON Schemas for editors. Both need no project."""

from __future__ import annotations

import sys
from pathlib import Path

from envbuild.errors import EnvBuildError
from envbuild.util import schema

INIT_TOML = """\
# envbuild project settings, all optional: every key is in docs/reference/config.md (and
# `envbuild schema config` prints the JSON Schema your editor can check this file with).

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
    from envbuild.project import CONFIG_FILE  # here: `envbuild --version` needs neither
    from envbuild.util.fs import atomic_write

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
