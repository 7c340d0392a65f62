"""One timestamp for every artifact made from a lock: the lock's epoch.

Reproducible builds (https://reproducible-builds.org/docs/source-date-epoch/) give every
archive member, compressed-stream header and recorded date one time derived from the inputs,
never "now". For an environment the input is its lockfile, and the time derived from it is the
newest package ``timestamp`` it records (conda's package timestamps are milliseconds since the
Unix epoch, some older ones seconds). Tarballs, images and ``SOURCE_DATE_EPOCH`` for tools run
on the environment all use :func:`lock_epoch`.

Reads the lockfile as YAML with the C loader when available; never imports conda-lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envbuild.errors import LockError

# When no package of a lock records a timestamp (repackaged or hand-made packages may carry 0):
# 2000-01-01T00:00:00Z, a fixed date later than 1980 (zip's earliest) and old enough that
# no tool warns about a time in the future. Documented in docs/explanation/reproducibility.md.
FALLBACK_EPOCH = 946684800

# the lockfile's custom_metadata key holding the newest package timestamp of the solve (s)
EPOCH_KEY = "envbuild_epoch"

# conda timestamps above this are milliseconds (1e11 s is the year 5138)
_MS_THRESHOLD = 100_000_000_000


def to_seconds(timestamp: object) -> int:
    """A conda ``timestamp`` (ms, or s for old packages) as whole seconds; 0 if absent."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or timestamp <= 0:
        return 0
    value = int(timestamp)
    return value // 1000 if value > _MS_THRESHOLD else value


def newest_timestamp(packages: list[dict[str, Any]]) -> int:
    """The newest ``timestamp`` (seconds) among ``packages`` (lock entries), or
    :data:`FALLBACK_EPOCH` when none has one."""
    newest = max((to_seconds(p.get("timestamp")) for p in packages), default=0)
    return newest or FALLBACK_EPOCH


def lock_epoch(lockfile: Path) -> int:
    """Seconds since the Unix epoch for everything made from ``lockfile``: the newest package
    ``timestamp`` in it (milliseconds converted to seconds). conda-lock's v1 format has no
    per-package timestamp, so ``doit lock`` records the newest one of the solve in
    ``metadata.custom_metadata.envbuild_epoch`` (:data:`EPOCH_KEY`), which is read when no
    package entry carries its own. :data:`FALLBACK_EPOCH` (2000-01-01T00:00:00Z) when
    neither has one (a lock written before envbuild recorded it, or packages all without
    timestamps).

    Raises LockError naming the file if it cannot be read as a conda-lock file.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(lockfile.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        msg = f"{lockfile}: cannot read the lockfile for its epoch ({e}); run `doit lock`"
        raise LockError(msg) from None
    packages = data.get("package") if isinstance(data, dict) else None
    if not isinstance(packages, list):
        msg = f"{lockfile}: package: expected a list of packages; run `doit lock`"
        raise LockError(msg)
    stamps = [to_seconds(p.get("timestamp")) for p in packages if isinstance(p, dict)]
    newest = max(stamps, default=0)
    if newest:
        return newest
    custom = (data.get("metadata") or {}).get("custom_metadata") or {}
    recorded = str(custom.get(EPOCH_KEY, "")) if isinstance(custom, dict) else ""
    return to_seconds(int(recorded)) if recorded.isdigit() and int(recorded) else FALLBACK_EPOCH


__all__ = ["EPOCH_KEY", "FALLBACK_EPOCH", "lock_epoch", "newest_timestamp", "to_seconds"]
