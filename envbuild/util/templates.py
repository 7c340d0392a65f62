"""Where templates come from: the project's ``templates/`` directory first, file by file, then
the ones shipped in the envbuild package (``envbuild/templates/``, package data). A project
overrides ``Dockerfile.j2`` by putting its own in ``templates/``, and keeps envbuild's
scheduler templates, or the other way round.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def search_path(project_templates: Path, subdir: str = "") -> list[Path]:
    """Directories to look in, in order: ``<project templates>/<subdir>``, then the
    package's."""
    return [project_templates / subdir, PACKAGE_TEMPLATES / subdir]


def find(project_templates: Path, name: str) -> Path:
    """The template file ``name`` (a path relative to a templates directory) that applies:
    the project's if it exists, else the package's (which always exists)."""
    own = project_templates / name
    return own if own.is_file() else PACKAGE_TEMPLATES / name
