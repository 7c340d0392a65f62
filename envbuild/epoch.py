"""The lock's epoch: one timestamp, derived from the lockfile alone, for every artifact that
must be byte-for-byte reproducible (tarball members, image ``created`` and layer mtimes, the
SBOM's timestamp). Same idea as ``SOURCE_DATE_EPOCH``
(https://reproducible-builds.org/specs/source-date-epoch/): a date the inputs fix, not the
clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from envbuild.errors import LockError
from envbuild.validate import display

# No package in the lock carries a timestamp (packages converted without one, PyPI wheels):
# 1980-01-01T00:00:00Z, the earliest date a zip member can hold, as the Python and Rust
# reproducible-build tools use; still reproducible, since it depends on nothing.
FALLBACK_EPOCH = 315532800


def lock_epoch(lockfile: Path) -> int:
    """Seconds since the Unix epoch (UTC) of the newest package in ``lockfile``.

    Reads the conda-lock v1 YAML plainly (no conda-lock model): the maximum of every
    ``package[*].timestamp``, which conda records in milliseconds (values above 1e11 are taken
    as milliseconds, smaller ones as seconds, as conda's own ``PackageRecord`` does); without
    any, :data:`FALLBACK_EPOCH`. Raises LockError if the file is missing or not a lockfile."""
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with lockfile.open("rb") as f:
            data = yaml.load(f, Loader=loader)
    except (OSError, yaml.YAMLError) as e:
        msg = f"{display(lockfile)}: cannot read the lock's epoch: {e}; run `doit lock`"
        raise LockError(msg) from None
    packages = data.get("package") if isinstance(data, dict) else None
    if not isinstance(packages, list):
        msg = f"{display(lockfile)}: package: expected a list of packages; run `doit lock`"
        raise LockError(msg)
    stamps = [
        p["timestamp"]
        for p in packages
        if isinstance(p, dict) and isinstance(p.get("timestamp"), int | float)
    ]
    if not stamps:
        return FALLBACK_EPOCH
    newest = max(stamps)
    return int(newest / 1000 if newest > 1e11 else newest)
