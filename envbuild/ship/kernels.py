"""Jupyter kernels for environments whose recipe asks for one (``jupyter: {kernel: true}``).

A kernelspec (https://jupyter-client.readthedocs.io/en/stable/kernels.html#kernel-specs) named
``envbuild-<name>`` is written to ``<Jupyter data dir>/kernels/``: ``$JUPYTER_DATA_DIR`` if
set, else Jupyter's per-user default (``~/.local/share/jupyter``; ``~/Library/Jupyter`` on
macOS). Its ``argv`` runs the environment's *stable* path, ``envs/<name>/bin/python``, so
rebuilds, nightly promotions and rollbacks keep it working without registering again. Each
spec records its project in ``metadata.envbuild``; :func:`prune` removes this project's specs
whose recipe is gone or no longer asks for a kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from envbuild.project import Project
from envbuild.recipe.model import Recipe
from envbuild.util.fs import atomic_write

PREFIX = "envbuild-"


def data_dir() -> Path:
    """Jupyter's user data directory (``JUPYTER_DATA_DIR`` wins)."""
    configured = os.environ.get("JUPYTER_DATA_DIR")
    if configured:
        return Path(configured)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Jupyter"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "jupyter"


def kernel_dir(name: str) -> Path:
    return data_dir() / "kernels" / f"{PREFIX}{name}"


def register(project: Project, recipe: Recipe) -> Path | None:
    """Write (or rewrite) the kernelspec of ``recipe`` if it asks for a kernel; returns the
    kernel.json written, or None (and then this project's kernelspec of ``recipe``, if one
    was registered before, is removed)."""
    if not recipe.jupyter.kernel:
        prune(project, set(registered(project)) - {recipe.name})
        return None
    python = project.env_prefix(recipe.name) / "bin" / "python"
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": recipe.jupyter.display_name or f"Python ({recipe.name}, envbuild)",
        "language": "python",
        "metadata": {"envbuild": {"project": str(project.root), "recipe": recipe.name}},
    }
    path = kernel_dir(recipe.name) / "kernel.json"
    atomic_write(path, json.dumps(spec, indent=2))
    return path


def registered(project: Project) -> dict[str, Path]:
    """recipe name -> kernel directory, for this project's kernelspecs."""
    out: dict[str, Path] = {}
    kernels = data_dir() / "kernels"
    for spec in sorted(kernels.glob(f"{PREFIX}*/kernel.json")) if kernels.is_dir() else []:
        try:
            meta = json.loads(spec.read_text()).get("metadata", {}).get("envbuild", {})
        except (OSError, ValueError):
            continue
        if meta.get("project") == str(project.root) and meta.get("recipe"):
            out[str(meta["recipe"])] = spec.parent
    return out


def prune(project: Project, wanted: set[str]) -> list[Path]:
    """Remove this project's kernelspecs except those of the recipes in ``wanted`` (the ones
    that exist and ask for a kernel). Returns the removed directories."""
    removed = []
    for name, directory in registered(project).items():
        if name not in wanted:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed
