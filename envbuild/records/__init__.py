"""Every record envbuild keeps, one frozen dataclass each, read and written in one way
(:class:`Record`: ``VERSION``, ``load``, ``peek``, ``save``; see :mod:`envbuild.records.base`).
Where each file lives: :mod:`envbuild.layout`. The keys of these JSON files are spelled only
here (tests/unit/test_architecture.py checks it)."""

from __future__ import annotations

from envbuild.records.base import Record
from envbuild.records.build import BuildInfo, Candidate, LockStamp
from envbuild.records.ops import NightlyResult, PublishRecord, Pulled, Switch
from envbuild.records.stages import (
    CLEAN,
    PASSED,
    TARBALL_FORMATS,
    DockerRecord,
    ImageRecord,
    PackRecord,
    PackState,
    SmokeRecord,
    StageStamp,
    VerifyReport,
)

__all__ = [
    "CLEAN",
    "PASSED",
    "TARBALL_FORMATS",
    "BuildInfo",
    "Candidate",
    "DockerRecord",
    "ImageRecord",
    "LockStamp",
    "NightlyResult",
    "PackRecord",
    "PackState",
    "PublishRecord",
    "Pulled",
    "Record",
    "SmokeRecord",
    "StageStamp",
    "Switch",
    "VerifyReport",
]
