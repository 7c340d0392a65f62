"""Scheduler definitions for machines we don't run: a GitHub Actions workflow, a systemd
service + timer pair and a crontab line.

The workflow locks every recipe for all its platforms in one job (``doit relock``), builds,
smoke-tests and packs each recipe on native runners for the platforms envbuild builds on
(:data:`envbuild.ops.ci.BUILDABLE`; ``win-64`` is locked but its build is unsupported until
tested), and merges the per-platform results into one lockfile per recipe and one pull request
(``doit ci_merge``, :mod:`envbuild.ops.ci`).

The workflow is hardened as GitHub's guide says
(https://docs.github.com/en/actions/security-for-github-actions/security-guides/security-hardening-for-github-actions)
and ``zizmor --offline`` finds nothing of medium or higher in it
(tests/integration/test_schedule.py): the
token is read-only (``permissions: contents: read``) except in the job that opens the pull
request, which runs no Python package, and the publish job (``packages: write``); every action
is pinned by commit from :data:`envbuild.ops.actions.PINS`; checkouts keep no credentials
(``persist-credentials: false``); ``${{ }}`` values reach scripts through ``env:``, never
expanded inside ``run:``.

Which envbuild the workflow installs (:func:`install_command`), so that the nightly runs the
tool that wrote it rather than whatever PyPI serves that day:

- envbuild's own checkout (``pyproject.toml`` names ``envbuild``): the checkout, ``pip install .``;
- a repository that keeps the lock :data:`REQUIREMENTS_LOCK` (``requirements/envbuild.txt``,
  e.g. from ``uv pip compile --generate-hashes``): ``pip install --require-hashes -r`` that
  file. It must pin ``envbuild==<this version>`` with a ``--hash=``, or writing the workflow
  fails with a ConfigError saying how to regenerate it;
- otherwise ``pip install envbuild==<this version>`` (``envbuild.__version__``).

Rendered from ``schedule/*.j2`` (the project's ``templates/`` first, then envbuild's) with
``<< >>``/``<% %>`` delimiters, so that GitHub's
own ``${{ }}`` expressions pass through untouched. Workflow syntax:
https://docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions;
timers: systemd.timer(5); cron: crontab(5).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import jinja2

from envbuild import __version__
from envbuild.errors import ConfigError
from envbuild.ops import actions
from envbuild.ops.ci import BUILDABLE
from envbuild.project import Project
from envbuild.recipe.model import Recipe
from envbuild.util import templates
from envbuild.util.fs import atomic_write, read_bounded

DEFAULT_CRON = "17 3 * * *"
RUNNERS = {  # GitHub-hosted runners per conda platform (native, no emulation)
    "linux-64": "ubuntu-latest",
    "linux-aarch64": "ubuntu-24.04-arm",
    "osx-64": "macos-13",  # the last Intel macOS image
    "osx-arm64": "macos-latest",
    "win-64": "windows-latest",
}
OUTPUTS = {
    "github-nightly.yml.j2": ".github/workflows/envbuild-nightly.yml",
    "envbuild-nightly.service.j2": "deploy/systemd/envbuild-nightly.service",
    "envbuild-nightly.timer.j2": "deploy/systemd/envbuild-nightly.timer",
    "crontab.j2": "deploy/cron/envbuild-nightly.cron",
}
_DAILY = re.compile(r"^(\d{1,2}) (\d{1,2}) \* \* \*$")
REQUIREMENTS_LOCK = "requirements/envbuild.txt"  # relative to the project root
_LOCK_LIMIT = 4 * 1024 * 1024


def jobs(recipes: list[Recipe]) -> list[dict[str, str]]:
    """The build matrix: one job per recipe and platform that envbuild builds on and that has
    a hosted runner."""
    return [
        {"recipe": r.name, "platform": p, "runner": RUNNERS[p]}
        for r in recipes
        for p in r.platforms
        if p in RUNNERS and p in BUILDABLE
    ]


def unsupported(recipes: list[Recipe]) -> list[dict[str, str]]:
    """(recipe, platform) pairs that are locked but not built (no native build support)."""
    return [
        {"recipe": r.name, "platform": p}
        for r in recipes
        for p in r.platforms
        if p not in BUILDABLE or p not in RUNNERS
    ]


def on_calendar(cron: str) -> str:
    """systemd ``OnCalendar=`` for a daily cron expression ``M H * * *``."""
    m = _DAILY.match(cron)
    if not m or int(m.group(1)) > 59 or int(m.group(2)) > 23:
        msg = f"schedule: {cron!r} is not a daily cron expression like '17 3 * * *'"
        raise ConfigError(msg)
    return f"*-*-* {int(m.group(2)):02d}:{int(m.group(1)):02d}:00"


def _pins_envbuild(text: str, version: str) -> bool:
    """Whether requirements-file ``text`` pins ``envbuild==version`` with a hash (pip's
    hash-checking mode; https://pip.pypa.io/en/stable/topics/secure-installs/)."""
    wanted = re.compile(rf"envbuild(\[[^\]]*\])?=={re.escape(version)}", re.IGNORECASE)
    for line in text.replace("\\\n", " ").splitlines():
        words = line.split(" #", 1)[0].split()
        if words and wanted.fullmatch(words[0]):
            return any(w.startswith("--hash=") for w in words[1:])
    return False


def install_command(project: Project, version: str = __version__) -> str:
    """The workflow's ``run:`` line installing envbuild (the rule is in the module docstring).
    Raises ConfigError if :data:`REQUIREMENTS_LOCK` cannot be read or does not pin
    ``envbuild==version`` with a hash."""
    pyproject = project.root / "pyproject.toml"
    if pyproject.is_file() and 'name = "envbuild"' in pyproject.read_text():
        return "python -m pip install ."
    lock = project.root / REQUIREMENTS_LOCK
    if not lock.exists() and not lock.is_symlink():
        return f"python -m pip install envbuild=={version}"
    try:
        text = read_bounded(lock, _LOCK_LIMIT, follow_symlinks=False).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        msg = f"{lock}: cannot be read ({reason}); it must be a regular requirements file"
        raise ConfigError(msg) from None
    if not _pins_envbuild(text, version):
        msg = (
            f"{lock}: does not pin envbuild=={version} (the version writing the workflow) "
            f"with --hash=; regenerate it, e.g. `echo envbuild=={version} | uv pip compile "
            f"--generate-hashes - -o {REQUIREMENTS_LOCK}`, or remove it to install by version"
        )
        raise ConfigError(msg)
    return f"python -m pip install --require-hashes -r {REQUIREMENTS_LOCK}"


def render(
    project: Project, recipes: list[Recipe], cron: str = DEFAULT_CRON, python: str | None = None
) -> dict[Path, str]:
    """Output path -> rendered text, for every scheduler definition (pure)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(
            templates.search_path(project.path("templates"), "schedule")
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        variable_start_string="<<",
        variable_end_string=">>",
        block_start_string="<%",
        block_end_string="%>",
        trim_blocks=True,
        lstrip_blocks=True,
    )
    context: dict[str, Any] = {
        "cron": cron,
        "on_calendar": on_calendar(cron),
        "jobs": jobs(recipes),
        "install": install_command(project),
        "version": __version__,
        "uses": actions.uses(),
        "unsupported": unsupported(recipes),
        "root": str(project.root),
        "python": python or sys.executable,
        "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "publish": project.publish_registry,  # "" : no publish job
        "publish_host": project.publish_registry.split("/", 1)[0],
    }
    out = {}
    for template, target in OUTPUTS.items():
        # the workflow installs its own Python: it wants a version, not this interpreter
        python_value = (
            context["python_version"] if template.startswith("github") else context["python"]
        )
        try:
            text = env.get_template(template).render(**{**context, "python": python_value})
        except jinja2.TemplateError as e:
            where = templates.find(project.path("templates"), f"schedule/{template}")
            line = getattr(e, "lineno", None)
            msg = f"{where}{f':{line}' if line else ''}: {type(e).__name__}: {e}"
            raise ConfigError(msg) from None
        out[project.root / target] = text
    return out


def write(project: Project, recipes: list[Recipe], cron: str = DEFAULT_CRON) -> list[Path]:
    """Render and write every definition atomically; returns the paths."""
    rendered = render(project, recipes, cron)
    for path, text in rendered.items():
        atomic_write(path, text)
    return sorted(rendered)
