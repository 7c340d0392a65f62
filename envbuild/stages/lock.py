"""The lock stage: solve a recipe and write ``locks/<name>.conda-lock.yml``.

Current when the lockfile was made from the recipe as it is now. Its record is the stamp
``build/state/<name>.lock.json`` of what the lockfile was made from: the sha256 of every file
the lock's fingerprint was computed from (recipe chain, ``envbuild.toml``). When all still
match, the lock is fresh without loading a recipe; when one differs (a comment was added,
say), the full fingerprint is compared (doit's ``config_changed`` idea, with a cheap first
look). Deciding never imports conda-lock, pydantic or py-rattler unless a source changed,
and never solves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from envbuild.channels import transport_url
from envbuild.layout import lock_stamp, project_at
from envbuild.project import CONFIG_FILE, Project
from envbuild.records import LockStamp
from envbuild.stages import inputs
from envbuild.stages.registry import Stage, register
from envbuild.util.fs import file_sha256

if TYPE_CHECKING:
    from envbuild.recipe.model import Recipe


def write_lock_stamp(
    project: Project, name: str, recipe_files: tuple[Path, ...], fingerprint: str
) -> None:
    """Record what lockfile ``name`` was made from: the sha256 of ``recipe_files`` (the recipe
    and its ``extends`` parents) and of ``envbuild.toml``, the fingerprint, the lockfile's
    sha256."""
    stamp = LockStamp(
        sources=inputs.sources(project, recipe_files),
        fingerprint=fingerprint,
        lockfile_sha256=file_sha256(project.lockfile(name)),
    )
    stamp.save(lock_stamp(project, name))


def lock_is_fresh(root: Path, name: str) -> bool:
    """True if ``locks/<name>.conda-lock.yml`` was made from the recipe as it is now.

    Fast path: the stamp's lockfile and source hashes all match (no recipe or lockfile
    parsing). Otherwise the recipe's fingerprint is computed and compared with the one in the
    lockfile, read with a plain YAML parser; a fresh lock then gets its stamp, so a lockfile
    that came from version control costs the slow path once. Never solves."""
    project = project_at(root)
    lockfile = project.lockfile(name)
    stamp = LockStamp.peek(lock_stamp(project, name))
    try:
        lock_sha = file_sha256(lockfile)
    except OSError:
        return False
    sources = stamp.sources if stamp else {}
    if stamp and stamp.lockfile_sha256 == lock_sha and sources:
        files = tuple(project.root / p for p in sources if p != CONFIG_FILE)
        if inputs.sources(project, files) == sources:
            return True
    # the slow path: recipe parsing and normalising (py-rattler's match spec parser)
    from envbuild.lock.lockfile import locked_fingerprint
    from envbuild.recipe.fingerprint import fingerprint
    from envbuild.recipe.load import load_recipe

    recipe = load_recipe(project.recipe_file(name), project.platforms)
    recorded = locked_fingerprint(lockfile)
    if recorded is None or recorded != fingerprint(recipe, project):
        return False
    # e.g. a lockfile from version control: the next check takes the fast path
    write_lock_stamp(project, name, recipe.sources, recorded)
    return True


def lock(project: Project, recipe: Recipe, name: str, update: str = "") -> None:
    """Solve ``recipe`` (``update``: comma-separated packages to update, every other one
    pinned to the current lock) and write its lockfile, explicit files and stamp."""
    from envbuild.lock import solve as lock_mod

    names = tuple(u.strip() for u in update.split(",") if u.strip())
    lock_mod.lock_recipe(recipe, project, names)
    write_lock_stamp(project, name, recipe.sources, lock_mod.fingerprint(recipe, project))


def _after(project: Project) -> tuple[str, ...]:
    """The offline channel first, if a mirror points at it."""
    offline = project.path("offline_channel").as_uri()
    used = any(transport_url(t, project.root) == offline for t in project.mirrors.values())
    return ("offline_channel",) if used else ()


STAGE = register(
    Stage(
        name="lock",
        doc="solve each recipe and write locks/<name>.conda-lock.yml; update=PKG[,PKG] updates "
        "only those packages, every other one stays pinned",
        run=lock,
        after=_after,
        target=lambda project, name: project.lockfile(name),
        record=lock_stamp,
        record_type=LockStamp,
        is_current=lock_is_fresh,
        hold=("own",),
        variables=("update",),
        warm=lambda: False,
        column=False,
    )
)
