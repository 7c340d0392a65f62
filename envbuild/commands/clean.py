"""``doit clean <stage>:<name>``: remove what one stage made for one environment."""

from __future__ import annotations

import logging
from pathlib import Path

from envbuild.install import build as build_mod
from envbuild.install import conda_envs, trash
from envbuild.layout import (
    build_state,
    docker_state,
    image_state,
    smoke_state,
)
from envbuild.project import load_project
from envbuild.util.fs import remove_tree

log = logging.getLogger("envbuild")


def clean(root: str, stage: str, name: str) -> None:
    """``doit clean <stage>:<name>``: remove what that stage made for environment ``name``
    (never another environment's, never a lockfile: lockfiles are committed sources).

    build: every build of ``name`` and ``envs/<name>`` (under its build mutex); smoke: its
    record; pack: its tarballs and SBOM, kept ones included; docker: ``docker/<name>/`` and its
    records (images are ``doit gc``'s)."""
    project = load_project(Path(root))
    if stage == "build":
        with build_mod.build_mutex(project, name):
            remove_tree(project.env_prefix(name))
            for d in build_mod.build_dirs(project, name):
                build_mod.remove_build(d)
            remove_tree(build_mod.builds_root(project, name))
            remove_tree(trash.trash_dir(project, name))
            remove_tree(build_state(project, name))
            conda_envs.unregister(project, name)  # conda env list no longer shows it
    elif stage == "smoke":
        remove_tree(smoke_state(project, name))
    elif stage == "pack":
        for f in [*project.path("dist").glob(f"{name}-*.tar.*"),
                  *project.path("dist").glob(f"{name}-*.cdx.json")]:  # fmt: skip
            remove_tree(f)
        remove_tree(project.path("dist") / "history" / name)
    elif stage == "docker":
        remove_tree(project.path("docker") / name)
        remove_tree(docker_state(project, name))
        remove_tree(image_state(project, name))
        for f in project.path("dist").glob(f"{name}-*.oci.tar"):
            remove_tree(f)
    log.info("cleaned %s of %s", stage, name)
