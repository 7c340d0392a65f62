"""envbuild's doit tasks, for a project's two-line ``dodo.py``::

    # doit tasks of this envbuild project
    from envbuild.dodo import *  # noqa: F403

The project is the directory doit runs in (doit changes into the ``dodo.py``'s directory before
loading it). Importing this module reads nothing: each name is looked up lazily (PEP 562
``__getattr__``, which ``import *`` uses too) in :func:`envbuild.graph.factory.tasks_for` of
the working directory, whose generators read ``envbuild.toml`` when doit calls them. The
``envbuild`` command does not use this module: it calls ``tasks_for`` with the project's root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envbuild.graph.factory import task_names, tasks_for

__all__ = ["DOIT_CONFIG", *task_names()]  # noqa: F822 (from __getattr__)


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return tasks_for(Path.cwd())[name]


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
