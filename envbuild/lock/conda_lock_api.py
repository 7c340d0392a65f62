"""conda-lock's lockfile API (models, parser, writer) without conda-lock's command line.

``conda_lock/__init__.py`` imports ``conda_lock.conda_lock`` (the CLI) and with it the conda
and PyPI solvers, ensureconda, requests and a vendored poetry: ~0.45 s here, of which the
lockfile modules (``conda_lock.lockfile``, pydantic included) are ~0.2 s. :func:`prepare`
registers the ``conda_lock`` package without running its ``__init__`` so that only the
submodules envbuild uses are imported; ``conda_lock.conda_lock`` itself still imports
normally if anything asks for it. :func:`preload` imports them on a thread, so that the cost
overlaps a solve running in the py-rattler worker process.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

from envbuild.errors import EnvBuildError

MODULES = (
    "conda_lock.lockfile",
    "conda_lock.lockfile.v1.models",
    "conda_lock.lockfile.v2prelim.models",
    "conda_lock.interfaces.vendored_conda",  # imported by the models' toposort on first use
)


def prepare() -> None:
    """Make ``conda_lock.<submodule>`` importable without executing ``conda_lock/__init__``.

    A no-op when ``conda_lock`` is already imported (whole or prepared). Raises EnvBuildError
    if conda-lock is not installed."""
    if "conda_lock" in sys.modules:
        return
    spec = importlib.util.find_spec("conda_lock")
    if spec is None or spec.submodule_search_locations is None:
        msg = "conda-lock is not installed: `pip install conda-lock` (envbuild needs it to lock)"
        raise EnvBuildError(msg)
    sys.modules.setdefault("conda_lock", importlib.util.module_from_spec(spec))


def _import_all() -> None:
    for name in MODULES:
        importlib.import_module(name)


def preload() -> threading.Thread:
    """Start importing conda-lock's lockfile modules on a daemon thread; returns it. Python's
    per-module import locks make a later ``import`` of the same modules wait for it."""
    prepare()
    thread = threading.Thread(target=_import_all, name="envbuild-preload-conda-lock", daemon=True)
    thread.start()
    return thread


__all__ = ["MODULES", "preload", "prepare"]
