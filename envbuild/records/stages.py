"""The records of the stages after a build: smoke, pack, Docker context, image, verify
(see :mod:`envbuild.records.base` for versions and damaged records). ``inputs`` and
``sources`` are the stage's input fingerprint and the sha256 of the files it was computed
from (:mod:`envbuild.stages.inputs`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from envbuild.records.base import BuildIdOrEmpty, Record

PASSED = "passed"
CLEAN = "clean"
TARBALL_FORMATS = ("tar.zst", "tar.gz")


@dataclass(frozen=True, slots=True)
class StageStamp(Record):
    """What a stage was made from: ``inputs`` (its fingerprint) and ``sources``; also the
    staged ``docker.inputs.json`` beside a candidate's Docker context."""

    WHAT: ClassVar[str] = "stage inputs record"

    inputs: str
    sources: dict[str, str]


@dataclass(frozen=True, slots=True)
class SmokeRecord(Record):
    """``build/state/<name>.smoke.json`` and, the same file, ``envs/.builds/<name>/<id>.smoke
    .json``: build ``build_id`` of ``recipe`` passed ``checks`` (each a
    :class:`envbuild.ship.smoke.CheckResult` as a dict); ``kernel_spec``: the Jupyter
    kernelspec registered with it ("" if none)."""

    WHAT: ClassVar[str] = "smoke record"
    FIX: ClassVar[str] = "remove it and run `doit smoke` (the checks run again)"

    recipe: str
    build_id: BuildIdOrEmpty
    status: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    inputs: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    kernel_spec: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def passed_for(self, build_id: str) -> bool:
        """True if this record says build ``build_id`` passed its checks."""
        return self.status == PASSED and self.build_id == build_id


@dataclass(frozen=True, slots=True)
class PackRecord(Record):
    """``envs/.builds/<name>/<id>.pack.json``: how that build was packed. ``format``:
    ``tar.zst`` or ``tar.gz``; ``unpacked_size``: bytes (None: packed by an older envbuild)."""

    WHAT: ClassVar[str] = "pack record"
    FIX: ClassVar[str] = "remove it and run `doit pack` (the tarball is made again)"

    format: str
    unpacked_size: int | None = None
    inputs: str = ""
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def has_tarball_format(self) -> bool:
        return self.format in TARBALL_FORMATS


@dataclass(frozen=True, slots=True)
class PackState(Record):
    """``build/state/<name>.pack.json``: the last tarball (``tarball``, a file name in
    ``dist/``, and its sha256) packed from lock ``lock_sha256`` with ``format``/``level`` and
    member times ``epoch`` (seconds), whether it reproduced an earlier pack of the same
    (lock, format, level) (None: the first), and ``known``: ``"<lock sha256>:<format>:<level>"``
    -> tarball sha256 of every pack so far."""

    WHAT: ClassVar[str] = "pack state"
    FIX: ClassVar[str] = "remove it and run `doit pack`"

    build_id: BuildIdOrEmpty
    lock_sha256: str
    epoch: int
    format: str
    level: int
    tarball: str
    tarball_sha256: str
    reproduced: bool | None = None
    known: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def known_key(lock_sha256: str, fmt: str, level: int) -> str:
        return f"{lock_sha256}:{fmt}:{level}"


@dataclass(frozen=True, slots=True)
class DockerRecord(Record):
    """``build/state/<name>.docker.json``: ``docker/<name>/`` was rendered for build
    ``build_id`` from the template with sha256 ``template_sha256`` and the tarball whose
    ``size:mtime_ns`` is ``tarball``."""

    WHAT: ClassVar[str] = "Docker context record"
    FIX: ClassVar[str] = "remove it and run `doit docker`"

    build_id: BuildIdOrEmpty
    template_sha256: str
    tarball: str
    inputs: str = ""
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImageRecord(Record):
    """``build/state/<name>.image.json`` and ``envs/.builds/<name>/<id>.image.json``: the image
    of build ``build_id``. An engine-built image has ``tag``, ``id``, ``size`` (bytes) and
    ``inputs`` (the docker stage's fingerprint); an image written without an engine has the
    manifest ``digest``, the ``archive`` (relative to the project root), the ``base``
    manifest digest, ``architecture``, ``env_bytes``, ``seconds`` and ``smoke`` ("passed" or
    why not run; "" in an engine-built record: its checks passed before it was written)."""

    WHAT: ClassVar[str] = "image record"
    FIX: ClassVar[str] = "remove it and run `doit docker`"

    build_id: BuildIdOrEmpty
    tag: str = ""
    id: str = ""
    size: int = 0
    inputs: str = ""
    lock_sha256: str = ""
    digest: str = ""
    archive: str = ""
    base: str = ""
    architecture: str = ""
    env_bytes: int = 0
    smoke: str = ""
    seconds: float = 0.0

    @property
    def smoke_status(self) -> str:
        """ "passed", why the checks did not run, or "" (no image)."""
        return self.smoke or (PASSED if self.tag else "")


@dataclass(frozen=True, slots=True)
class VerifyReport(Record):
    """``reports/<name>.verify.json``: build ``build_id`` of ``recipe`` compared with its lock;
    ``status``: ``clean`` or ``drifted``; ``findings``: each a
    :class:`envbuild.prefix.verify.Finding` as a dict."""

    WHAT: ClassVar[str] = "verify report"
    FIX: ClassVar[str] = "remove it and run `doit verify`"

    recipe: str
    build_id: BuildIdOrEmpty
    status: str
    findings: list[dict[str, Any]] = field(default_factory=list)

    def drifted_for(self, build_id: str) -> bool:
        """True if this report found build ``build_id`` drifted."""
        return self.build_id == build_id and self.status != CLEAN
