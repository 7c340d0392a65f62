"""The one reader of conda-meta records, ``<prefix>/conda-meta/<name>-<version>-<build>.json``.

Record format: conda's package record with ``paths_data``
(https://docs.conda.io/projects/conda/en/latest/dev-guide/deep-dives/install.html), as conda,
py-rattler and conda-pack write it. Records are read as plain JSON, not through py-rattler's
``PrefixRecord``: the readers need fields and values it drops or normalises (``path_type``
``pyc_file`` entries as conda writes them, falsy index fields such as ``timestamp: 0``, the
raw record to rewrite and write back: :mod:`envbuild.ship.relocate`), and the no-op path must
not import py-rattler. Measured on a 19-package, 4,487-file environment: json 10-16 ms for all
records; ``PrefixRecord.from_path`` 5-6 ms plus ~50 ms to import py-rattler plus ~20 ms to
walk its path entries. :mod:`envbuild.prefix.doctor` still builds a ``PrefixRecord`` beside
the raw record, for py-rattler's ``MatchSpec.matches``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

META = "conda-meta"  # the records' directory, relative to the prefix


def record_files(prefix: Path) -> list[Path]:
    """The record files of ``prefix`` (``conda-meta/*.json``), sorted by name; [] if none."""
    return sorted((prefix / META).glob("*.json"))


def parse_record(data: str | bytes) -> dict[str, Any]:
    """One record from its JSON text, as it is (for a rewrite that keeps every field).
    Raises ValueError (JSON errors included) if it is not a JSON object."""
    record = json.loads(data)
    if not isinstance(record, dict):
        raise ValueError("not a package record (not a JSON object)")
    return record


def read_record(path: Path) -> dict[str, Any]:
    """The package record in file ``path``. Raises OSError, or ValueError if it is not JSON,
    or not an object with a string ``name``."""
    record = parse_record(path.read_bytes())
    if not isinstance(record.get("name"), str):
        raise ValueError("not a package record (no 'name')")
    return record


def read_records(prefix: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, record) for every record of ``prefix``, in file name order. Raises OSError or
    ValueError naming the file for one that cannot be read."""
    out = []
    for path in record_files(prefix):
        try:
            out.append((path, read_record(path)))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e
    return out


def records_by_name(prefix: Path) -> dict[str, dict[str, Any]]:
    """Package name -> record, for every record of ``prefix`` (as :func:`read_records`)."""
    return {record["name"]: record for _, record in read_records(prefix)}
