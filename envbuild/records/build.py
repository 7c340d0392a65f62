"""The records of a lock and a build: the lock stamp, the build's completion marker, a
nightly's candidate (see :mod:`envbuild.records.base` for versions and damaged records)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from envbuild.records.base import BuildId, Record


@dataclass(frozen=True, slots=True)
class LockStamp(Record):
    """``build/state/<name>.lock.json``: what lockfile ``name`` was made from. ``sources``:
    relative path -> sha256 of each recipe file of the chain and ``envbuild.toml``;
    ``fingerprint``: the recipe's solve fingerprint; ``lockfile_sha256``: the lockfile's."""

    WHAT: ClassVar[str] = "lock stamp"
    FIX: ClassVar[str] = "remove it; `doit check` or `doit lock` writes it again"

    sources: dict[str, str]
    fingerprint: str
    lockfile_sha256: str


@dataclass(frozen=True, slots=True)
class BuildInfo(Record):
    """The completion marker of a build, ``envs/.builds/<name>/<build id>.json``, and its copy
    ``build/state/<name>.build.json`` (the smoke task's input). Kept outside the prefix so that
    conda-pack and conda-meta readers never see it. ``seconds``: the install's wall time;
    ``prefix``: the absolute path the packages were installed for ("" before it was kept)."""

    WHAT: ClassVar[str] = "build record"
    FIX: ClassVar[str] = "remove it and run `doit build` (the build is made again)"

    recipe: str
    build_id: BuildId
    platform: str
    lock_sha256: str
    fingerprint: str
    packages: int
    seconds: float
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Candidate(Record):
    """``build/state/candidate/<name>/candidate.json``: the build id of a nightly's candidate,
    written before its build directory exists (see :mod:`envbuild.ops.promotion`)."""

    WHAT: ClassVar[str] = "candidate record"
    FIX: ClassVar[str] = "remove build/state/candidate/<name>: nothing current uses it"

    build_id: BuildId
