"""Builds beyond the kept number: moved aside with one rename when a switch happens, deleted
later off the critical path (while the next build of that environment installs, or by
``doit gc``)."""

from __future__ import annotations

import os
from pathlib import Path

from envbuild.layout import BUILDS_DIR, builds_root, lock_copy, marker_path
from envbuild.project import Project
from envbuild.util.fs import remove_tree


def trash_dir(project: Project, name: str) -> Path:
    """``envs/.builds/.<name>.trash``: where builds beyond the kept number wait to be deleted
    (by the next build of ``name`` while its packages install, or by ``doit gc``)."""
    return builds_root(project, name).with_name(f".{name}.trash")


def retire_build(prefix: Path, trash: Path) -> None:
    """Make ``prefix`` no build any more: remove its marker (first) and lock copy, then move
    the directory into ``trash`` with one rename, so that a switch never waits for its
    ~20,000 unlinks (~0.15 s for ``ml`` here). Removed in place if it cannot be moved."""
    remove_tree(marker_path(prefix))
    remove_tree(lock_copy(prefix))
    try:
        trash.mkdir(parents=True, exist_ok=True)
        os.rename(prefix, trash / prefix.name)
    except OSError:  # e.g. a directory of that name is still in the trash
        remove_tree(prefix)


def retired_builds(project: Project) -> list[tuple[str, Path]]:
    """(environment name, directory) of every retired build waiting in a trash (reads only)."""
    root = project.path("envs") / BUILDS_DIR
    out = []
    for trash in sorted(root.glob(".*.trash")) if root.is_dir() else []:
        name = trash.name[1:].removesuffix(".trash")
        out += [(name, d) for d in sorted(trash.iterdir())]
    return out


def empty_trash(project: Project, name: str) -> int:
    """Delete what :func:`retire_build` moved to ``name``'s trash (call under the build
    mutex). Returns the number of directories deleted."""
    trash = trash_dir(project, name)
    entries = sorted(trash.iterdir()) if trash.is_dir() else []
    for entry in entries:
        remove_tree(entry)
    return len(entries)
