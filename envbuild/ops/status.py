"""``doit status``: one line per environment, from the records the stages leave.

Reads only small files (stamps, markers, reports) and stats: it never solves, never imports
py-rattler or conda-lock and asks the Docker engine nothing, so it is fast enough for a shell
prompt. Ages in seconds, sizes in bytes (JSON) or MB (table).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from envbuild.errors import EnvBuildError, LockError, RecipeError
from envbuild.layout import (
    image_state,
    nightly_result,
    pack_state,
    promotion_journal,
    read_marker,
    smoke_state,
    state_file,
    verify_report,
)
from envbuild.lock.lockfile import read_packages
from envbuild.project import Project
from envbuild.recipe.io import read_document
from envbuild.records import (
    PASSED,
    ImageRecord,
    NightlyResult,
    PackState,
    PublishRecord,
    SmokeRecord,
    Switch,
    VerifyReport,
)
from envbuild.stages import registry
from envbuild.stages.lock import lock_is_fresh
from envbuild.util.fs import tree_bytes


@dataclass(frozen=True, slots=True)
class EnvStatus:
    """Where one environment stands. Empty strings and zeros mean "none"."""

    recipe: str
    lock: str  # "fresh", "stale", "missing", or "invalid" (the recipe does not parse)
    lock_age: float
    lock_platforms: tuple[str, ...]
    build_id: str
    build_age: float
    build_bytes: int
    smoke: str  # "passed", "not run"
    tarball_bytes: int
    tarball_build: str
    tarball_sha256: str  # recorded by pack for that tarball ("" if none recorded)
    image: str
    image_build: str
    image_digest: str  # the manifest digest of the image written without an engine
    image_smoke: str  # "passed", or why the in-container checks did not run
    verify: str  # "clean", "drifted", "not run" (for the current build)
    nightly: str  # last nightly outcome: promoted/proposed/unchanged/failed at <stage>/""
    published: str = ""  # REGISTRY/NAMESPACE/<name>@sha256:... :current was moved to last
    published_build: str = ""  # the build that image is of
    pending_switch: str = ""  # the build an interrupted switch goes to (its journal exists)
    recipe_error: str = ""  # why the recipe file does not parse ("" when it does)
    # stage -> "current" or "-", for each registered stage shown as a column of its own
    stages: dict[str, str] = field(default_factory=dict)


def _platforms(lockfile: Path) -> tuple[str, ...]:
    try:
        return read_packages(lockfile).platforms
    except LockError:
        return ()


def env_status(project: Project, name: str, now: float | None = None) -> EnvStatus:
    """The :class:`EnvStatus` of environment ``name`` (reads only)."""
    now = time.time() if now is None else now
    try:  # YAML only: deciding "invalid" must not import the solver's libraries
        read_document(project.recipe_file(name))
        recipe_error = ""
    except RecipeError as e:
        recipe_error = str(e)
    lockfile = project.lockfile(name)
    has_lock = lockfile.exists()
    try:
        fresh = has_lock and not recipe_error and lock_is_fresh(project.root, name)
    except EnvBuildError as e:  # the YAML parses, the recipe does not (a key, a spec, extends)
        recipe_error, fresh = str(e), False
    info = read_marker(project.env_prefix(name))
    build_id = info.build_id if info else ""
    smoke = SmokeRecord.peek(smoke_state(project, name))
    verify = VerifyReport.peek(verify_report(project, name))
    image = ImageRecord.peek(image_state(project, name))
    nightly = NightlyResult.peek(nightly_result(project, name))
    packed = PackState.peek(pack_state(project, name))
    published = PublishRecord.peek(state_file(project, name, "publish"))
    journal = Switch.peek(promotion_journal(project, name))
    tarball = next(iter(sorted(project.path("dist").glob(f"{name}-*.tar.*"))), None)
    tarball_build = ""
    history = project.path("dist") / "history" / name
    if tarball is not None and history.is_dir():
        for kept in history.iterdir():
            if os.path.samefile(kept, tarball):
                tarball_build = kept.name.split(".", 1)[0]
    nightly_status = nightly.status if nightly else ""
    if nightly and nightly_status == "failed":
        nightly_status = f"failed at {nightly.stage or '?'}"
    return EnvStatus(
        recipe=name,
        lock="invalid"
        if recipe_error
        else ("fresh" if fresh else ("stale" if has_lock else "missing")),
        lock_age=round(now - lockfile.stat().st_mtime, 1) if has_lock else 0.0,
        lock_platforms=_platforms(lockfile) if has_lock else (),
        build_id=build_id,
        build_age=round(now - project.env_prefix(name).resolve().stat().st_mtime, 1)
        if info
        else 0.0,
        build_bytes=tree_bytes(project.env_prefix(name).resolve()) if info else 0,
        smoke=PASSED if info and smoke and smoke.passed_for(build_id) else "not run",
        tarball_bytes=tarball.stat().st_size if tarball else 0,
        tarball_build=tarball_build,
        tarball_sha256=packed.tarball_sha256
        if packed and tarball is not None and packed.tarball == tarball.name
        else "",
        image=image.tag if image else "",
        image_build=image.build_id if image else "",
        image_digest=image.digest if image else "",
        image_smoke=image.smoke_status if image else "",
        verify=verify.status if info and verify and verify.build_id == build_id else "not run",
        nightly=nightly_status,
        published=published.reference if published else "",
        published_build=published.build_id if published else "",
        pending_switch=journal.build_id if journal else "",
        recipe_error=recipe_error,
        stages={s.name: _current(s, project, name) for s in registry.stages() if s.column},
    )


def _current(stage: registry.Stage, project: Project, name: str) -> str:
    """ "current" if ``stage`` of ``name`` is up to date, else "-" (also for a stage that
    runs whenever asked, or whose check fails)."""
    try:
        current = stage.is_current is not None and stage.is_current(project.root, name)
    except EnvBuildError:
        current = False
    return "current" if current else "-"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _for(build: str, current: str) -> str:
    return "" if not build else (" (current)" if build == current else f" (build {build})")


def table(rows: list[EnvStatus]) -> str:
    """One line per environment: recipe, lock, build, smoke, tarball, image, verify, nightly,
    published (the registry's ``:current``, as the last publish or switch left it), then a
    column for each other registered stage."""
    extra = tuple(rows[0].stages) if rows else ()
    header = ("recipe", "lock", "build", "smoke", "tarball", "image", "verify", "nightly",
              "published", *extra)  # fmt: skip
    lines = [header]
    for r in rows:
        lock = (
            f"{r.lock} {_age(r.lock_age)} [{','.join(r.lock_platforms)}]"
            if r.lock not in ("missing", "invalid")
            else r.lock
        )
        build = (
            f"{r.build_id} {_age(r.build_age)} {r.build_bytes / 1e6:.0f}MB" if r.build_id else "-"
        )
        tarball = (
            f"{r.tarball_bytes / 1e6:.0f}MB{_for(r.tarball_build, r.build_id)}"
            if r.tarball_bytes
            else "-"
        )
        image = f"{r.image}{_for(r.image_build, r.build_id)}" if r.image else "-"
        if r.image_digest:  # written without an engine: its digest, and whether checked inside
            checked = "" if r.image_smoke == "passed" else ", not checked inside"
            image = f"{r.image_digest[:19]}{_for(r.image_build, r.build_id)}{checked}"
        published = (
            f"{r.published.split('@')[0]}@{r.published.split('@')[1][:19]}"
            f"{_for(r.published_build, r.build_id)}"
            if r.published
            else "-"
        )
        lines.append((r.recipe, lock, build, r.smoke, tarball, image, r.verify,
                      r.nightly or "-", published,
                      *(r.stages.get(s, "-") for s in extra)))  # fmt: skip
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in lines)  # fmt: skip
    invalid = [f"invalid recipe: {r.recipe_error}" for r in rows if r.recipe_error]
    pending = [
        f"{r.recipe}: the switch to build {r.pending_switch} was interrupted; the next "
        f"`doit build env={r.recipe}` finishes it"
        for r in rows
        if r.pending_switch
    ]
    return "\n".join([text, *invalid, *pending])


def to_json(rows: list[EnvStatus]) -> str:
    data: list[dict[str, Any]] = [asdict(r) for r in rows]
    return json.dumps(data, indent=2)
