"""Environments listed where conda looks for them: the user's ``environments.txt``.

conda lists every environment it created in ``~/.conda/environments.txt``, one absolute path a
line (conda/core/envs_manager.py, ``register_env``); ``conda env list`` shows them and
``conda doctor`` reports an environment missing from it. envbuild adds each environment's
stable path (``envs/<name>``, which rebuilds, promotions and rollbacks keep) after a build, and
:func:`prune` takes out this project's entries whose recipe is gone (``doit gc``), and
``doit clean build:<name>`` the one it removed. ``[builds]
register = false`` in ``envbuild.toml`` turns it off (gc then takes this project's entries
out). ``ENVBUILD_CONDA_ENVIRONMENTS_TXT`` names another file (a machine that keeps conda's
registry elsewhere; tests). A file that cannot be written is a warning, as in conda, never a
failed build.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from envbuild.project import Project
from envbuild.util.fs import atomic_write

log = logging.getLogger("envbuild")


def environments_txt() -> Path:
    """The user's conda environment registry (``ENVBUILD_CONDA_ENVIRONMENTS_TXT`` wins)."""
    override = os.environ.get("ENVBUILD_CONDA_ENVIRONMENTS_TXT")
    return Path(override) if override else Path.home() / ".conda" / "environments.txt"


def _lines() -> list[str]:
    try:
        return environments_txt().read_text(errors="replace").splitlines()
    except OSError:
        return []


def _write(lines: list[str]) -> bool:
    path = environments_txt()
    try:
        atomic_write(path, "".join(line + "\n" for line in lines))
    except OSError as e:
        log.warning("could not update %s (%s); conda env list will not show it", path, e)
        return False
    return True


def registered(project: Project) -> dict[str, str]:
    """recipe name -> registry line, for this project's environments listed there."""
    envs = os.path.normpath(project.path("envs"))
    out = {}
    for line in _lines():
        path = os.path.normpath(line.strip()) if line.strip() else ""
        if path and os.path.dirname(path) == envs:
            out[os.path.basename(path)] = line
    return out


def register(project: Project, name: str) -> Path | None:
    """Add ``envs/<name>`` (absolute, normalised, as conda writes it) to the registry unless it
    is listed or ``[builds] register`` is off. Returns the registry's path if it lists the
    environment now, else None."""
    if not project.register_envs:
        return None
    prefix = os.path.normpath(project.env_prefix(name))
    lines = _lines()
    if prefix in (os.path.normpath(x.strip()) for x in lines if x.strip()):
        return environments_txt()
    return environments_txt() if _write([*lines, prefix]) else None


def prune(project: Project, wanted: set[str]) -> list[str]:
    """Take out this project's entries except those of the recipes in ``wanted`` (all of them
    when ``[builds] register`` is off). Returns the removed paths."""
    keep = wanted if project.register_envs else set()
    gone = {line for name, line in registered(project).items() if name not in keep}
    if gone and _write([line for line in _lines() if line not in gone]):
        return sorted(line.strip() for line in gone)
    return []


def unregister(project: Project, name: str) -> bool:
    """Take ``envs/<name>`` out of the registry (``doit clean build:<name>`` removed it),
    whatever ``[builds] register`` says. Returns True if a line was removed."""
    prefix = os.path.normpath(project.env_prefix(name))
    lines = _lines()
    kept = [x for x in lines if not x.strip() or os.path.normpath(x.strip()) != prefix]
    return len(kept) < len(lines) and _write(kept)
