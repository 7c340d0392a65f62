"""The records of switching, nightly rebuilds, publishing and pulling (see
:mod:`envbuild.records.base` for versions and damaged records)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from envbuild.records.base import BuildId, BuildIdOrEmpty, EnvName, Record


@dataclass(frozen=True, slots=True)
class Switch(Record):
    """The journal of a promotion or rollback in progress, ``build/state/<name>.promotion.json``
    (:mod:`envbuild.ops.promotion`): what one switch makes current for environment ``name``:
    build ``build_id``; ``tarball``, the kept tarball (``dist/history/<name>/<id>.<fmt>``) to
    publish at ``dist_tarball`` (both relative to the project root; an empty ``tarball``
    removes the published one); ``context``, a staged Docker context directory (relative;
    empty: none); ``image``, the image tag to point ``envbuild/<name>:current`` at (empty:
    remove that tag); ``registry_image``, the manifest digest already pushed to ``registry``
    (``[publish]`` ``HOST/NAMESPACE``) whose ``:current`` moves to it (empty: no registry
    step)."""

    WHAT: ClassVar[str] = "promotion journal"
    FIX: ClassVar[str] = (
        "remove it (the switch it describes is then not finished: run `doit build` or "
        "`doit rollback` again)"
    )

    name: EnvName
    build_id: BuildId
    dist_tarball: str
    tarball: str = ""
    context: str = ""
    image: str = ""
    registry: str = ""
    registry_image: str = ""

    def misplaced(self, root: Path, name: str, dist: Path, history: Path, staged: Path) -> str:
        """What in this journal (read from environment ``name``'s journal file, paths relative
        to the project ``root``) points outside the places a switch of ``name`` writes, or ""
        if nothing: ``dist_tarball`` must be a file directly in ``dist``, ``tarball`` (if any)
        one directly in ``history`` (``dist/history/<name>``), ``context`` (if any) the
        directory ``staged``. ``dist``, ``history``, ``staged``: absolute, normalized."""
        if self.name != name:
            return f"it is the journal of {self.name!r}, not of {name!r}"

        def inside(rel: str, parent: Path, exact: bool = False) -> bool:
            full = Path(os.path.normpath(root / rel))
            return full == parent if exact else full.parent == parent

        for key, value, ok in (
            ("dist_tarball", self.dist_tarball, inside(self.dist_tarball, dist)),
            ("tarball", self.tarball, not self.tarball or inside(self.tarball, history)),
            ("context", self.context, not self.context or inside(self.context, staged, True)),
        ):
            if not ok:
                return f"its {key} {json.dumps(value)} is not where a switch of {name!r} puts it"
        return ""


@dataclass(frozen=True, slots=True)
class NightlyResult(Record):
    """``build/state/nightly/<name>.result.json``: one environment's nightly outcome.
    ``status``: promoted, proposed (``[nightly] mode = "propose"``: the candidate passed and
    its lock and diff are in reports/, nothing switched), unchanged (the fresh solve gave the
    packages already locked and built: nothing built, promoted, packed or imaged) or failed;
    ``stage``: where it failed. Sizes in bytes, times in seconds."""

    WHAT: ClassVar[str] = "nightly result"
    FIX: ClassVar[str] = "remove it and run `doit nightly` again"

    recipe: str
    status: str
    stage: str = ""
    error: str = ""
    build_id: BuildIdOrEmpty = ""
    changes: list[dict[str, str]] = field(default_factory=list)
    smoke: list[dict[str, Any]] = field(default_factory=list)
    build_seconds: float = 0.0
    env_bytes: int = 0
    tarball_bytes: int = 0
    image: str = ""
    seconds: float = 0.0
    exclude_newer: str = ""  # the cutoff this night solved with (UTC)


@dataclass(frozen=True, slots=True)
class PublishRecord(Record):
    """``build/state/<name>.publish.json`` and ``envs/.builds/<name>/<id>.publish.json``: build
    ``build_id`` pushed to ``repository`` (``host/namespace/name``) as ``image`` (a manifest
    digest) with its ``tarball`` and ``sbom`` digests; the rest as
    :class:`envbuild.deliver.publish.Published` has it; ``smoke_imports``: what its
    tarball's proof imports (pushed again from the kept archive by a rollback)."""

    WHAT: ClassVar[str] = "publish record"
    FIX: ClassVar[str] = "remove it and run `doit publish`"

    repository: str
    image: str
    build_id: BuildIdOrEmpty
    tarball: str = ""
    sbom: str = ""
    tags_moved: tuple[str, ...] = ()
    uploaded: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    referrers_api: bool = False
    seconds: float = 0.0
    signed: bool = False
    signing_keyid: str = ""
    attestation: str = ""
    smoke_imports: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        """``repository@image``, or "" if either is unknown."""
        return f"{self.repository}@{self.image}" if self.repository and self.image else ""


@dataclass(frozen=True, slots=True)
class Pulled(Record):
    """The record of one ``envbuild pull`` (``<pulls dir>/<id>.json``): what was asked for,
    the image and artifact digests, the tarball blob, the directory it went to
    (``pulls_dir/<id>``), imports checked, bytes transferred, seconds; ``changed`` is False
    when PATH already held it."""

    WHAT: ClassVar[str] = "pull record"
    FIX: ClassVar[str] = "remove it and run `envbuild pull` again"

    reference: str
    image: str
    artifact: str
    tarball: str
    directory: str
    imports: tuple[str, ...]
    bytes_received: int
    seconds: float
    changed: bool = True
