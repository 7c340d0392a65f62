"""Installed package records: every archive checked against the lock, and ``conda-meta`` written
as conda would write it.

Runs inside the py-rattler worker (it imports py-rattler). Two steps around
``rattler.install``:

* :func:`verify_archives` before it: py-rattler checks the sha256 of packages it downloads over
  http(s), not of ``file://`` archives (and its package cache is keyed by file name), so every
  ``file://`` archive is hashed here and compared with the lock first.
* :func:`finalize_records` after it: the lockfile (conda-lock v1) keeps only name, version,
  build, url, hashes and dependency names, so py-rattler's records lack build_number, noarch,
  constrains, license, timestamp. Each record is completed from the package's own
  ``info/index.json`` (read from the package cache entry that py-rattler extracted from the
  verified archive), gets its canonical url and channel (never the mirror), ``sha256_in_prefix``
  for every file as installed, and mode 0644. ``conda-meta/history`` gets the requested specs
  the way conda writes them, so ``conda env export --from-history`` works.

Record format: conda's PrefixRecord
(https://docs.conda.io/projects/conda/en/latest/dev-guide/deep-dives/install.html); history
format: conda's ``conda/history.py`` (``==> date <==``, ``+channel::dist``, ``# update specs:``).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import rattler

from envbuild.prefix.meta import read_record
from envbuild.util.fs import file_sha256

# Fields taken from the package's own index.json (the lock's reduced copy lacks them).
_INDEX_FIELDS = (
    "build_number", "depends", "constrains", "noarch", "license", "license_family",
    "timestamp", "track_features", "features", "arch", "platform", "subdir",
    "python_site_packages_path",
)  # fmt: skip


# py-rattler's installer writes a cache directory tag (https://bford.info/cachedir/) into the
# prefix: backup tools that honour it would skip the whole environment
CACHE_TAG = "CACHEDIR.TAG"


# path types conda records no sha256_in_prefix for (conda/core/path_actions.py)
_NO_HASH_IN_PREFIX = (
    "softlink", "directory", "unix_python_entry_point", "windows_python_entry_point_script",
)  # fmt: skip


class ArchiveMismatch(Exception):
    """An archive is not the one the lock names; ``details`` lists each mismatch."""

    def __init__(self, details: list[dict[str, str]]) -> None:
        lines = [
            f"{d['name']}: {d['url']}: expected sha256 {d['expected']}, got {d['actual']}"
            for d in details
        ]
        super().__init__("\n".join(lines))
        self.details = details


def local_path(url: str) -> Path | None:
    """The file a ``file://`` URL names, or None for other schemes."""
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def verify_archives(records: list[dict[str, Any]]) -> dict[str, int]:
    """Hash every ``file://`` archive of ``records`` (``url`` = where it is fetched from,
    ``sha256`` = what the lock names) in parallel threads.

    Output: fn -> size in bytes of each verified local archive. Raises ArchiveMismatch naming
    every archive whose sha256 differs or that cannot be read (a missing one is left to
    py-rattler's fetch, whose error names it)."""
    # a missing archive is left to py-rattler, whose fetch error names it
    local = [(r, p) for r in records if (p := local_path(r["url"])) is not None and p.exists()]

    def check(item: tuple[dict[str, Any], Path]) -> tuple[str, int, str]:
        r, path = item
        try:
            return r["fn"], path.stat().st_size, file_sha256(path)
        except OSError as e:
            return r["fn"], -1, f"(unreadable: {e.strerror})"

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        results = list(pool.map(check, local))
    bad = [
        {
            "name": r["name"],
            "url": r.get("canonical_url", r["url"]),
            "transport": r["url"],
            "expected": r["sha256"],
            "actual": actual,
        }
        for (r, _), (_, _, actual) in zip(local, results, strict=True)
        if actual != r["sha256"]
    ]
    if bad:
        raise ArchiveMismatch(bad)
    return {fn: size for fn, size, _ in results}


def _installed_sha256(path: Path) -> str | None:
    try:
        return file_sha256(path) if path.is_file() else None
    except OSError:
        return None


def _complete_record(meta: Path, prefix: Path, index: dict[str, Any]) -> None:
    """Give every file entry of ``paths_data`` the sha256 of the file as installed, as conda
    does: not for symlinks (their target is another entry) nor for generated entry points
    (conda-pack rewrites their shebang; py-rattler's ``sha256`` of them stays), so that
    ``conda doctor`` counts what it counts in conda's own environments. Put back the
    ``index`` fields py-rattler dropped for being falsy (``timestamp: 0``)."""
    data = read_record(meta)
    for field in _INDEX_FIELDS:
        if field in index and field not in data:
            data[field] = index[field]
    entries = data.get("paths_data", {}).get("paths", [])
    todo = []
    for e in entries:
        if e.get("path_type") in _NO_HASH_IN_PREFIX:
            e.pop("sha256_in_prefix", None)
            continue
        if "sha256_in_prefix" in e:
            continue
        if e.get("path_type") == "hardlink" and "prefix_placeholder" not in e and e.get("sha256"):
            # linked or copied from a cache file validated against this hash (in full, or
            # unchanged since by its stamp: envbuild.rattler.cache_stamps)
            e["sha256_in_prefix"] = e["sha256"]
        else:
            todo.append(e)
    sums: list[str | None] = []
    if todo:  # most records have none: no pool for them
        with ThreadPoolExecutor(max_workers=4) as pool:
            sums = list(pool.map(lambda e: _installed_sha256(prefix / e["_path"]), todo))
    for e, digest in zip(todo, sums, strict=True):
        if digest is not None:
            e["sha256_in_prefix"] = digest
    meta.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")))


def finalize_records(
    prefix: Path, records: list[dict[str, Any]], sizes: dict[str, int], specs: list[str]
) -> list[Path]:
    """Complete the ``conda-meta`` record of each installed package of ``records`` (lock
    records with ``canonical_url`` and ``canonical_channel``) from its ``info/index.json``;
    packages the recipe asked for by name get their ``specs`` as ``requested_spec(s)``.
    py-rattler's ``CACHEDIR.TAG`` in the prefix is removed unless a package installed it.

    Output: the record paths. Raises ArchiveMismatch if a package's index.json names another
    package than the lock (the archive is not the locked package)."""
    requested: dict[str, list[str]] = {}
    for spec in specs:
        name = rattler.MatchSpec(spec).name
        if name is not None:
            requested.setdefault(name.normalized, []).append(spec)
    paths = []
    wrong = []
    owned_tag = False
    for r in records:
        meta = prefix / "conda-meta" / f"{r['name']}-{r['version']}-{r['build']}.json"
        pr = rattler.PrefixRecord.from_path(meta)
        if pr.extracted_package_dir is None:
            msg = f"{meta}: py-rattler recorded no package cache entry to read index.json from"
            raise RuntimeError(msg)
        index = rattler.IndexJson.from_package_directory(pr.extracted_package_dir)
        identity = (index.name.normalized, str(index.version), str(index.build))
        if identity != (r["name"], r["version"], r["build"]):
            wrong.append(
                {
                    "name": r["name"],
                    "url": r["canonical_url"],
                    "transport": r["url"],
                    "expected": f"{r['name']}-{r['version']}-{r['build']}",
                    "actual": "-".join(identity),
                }
            )
            continue
        for field in _INDEX_FIELDS:
            setattr(pr, field, getattr(index, field))
        pr.url = r["canonical_url"]
        pr.channel = r["canonical_channel"]
        if r["fn"] in sizes:
            pr.size = sizes[r["fn"]]
        if r["name"] in requested:
            pr.requested_spec = ",".join(requested[r["name"]])
            pr.requested_specs = requested[r["name"]]
        pr.write_to_path(meta, pretty=True)
        raw = json.loads((Path(pr.extracted_package_dir) / "info" / "index.json").read_text())
        _complete_record(meta, prefix, raw)
        owned_tag = owned_tag or Path(CACHE_TAG) in pr.files
        os.chmod(meta, 0o644)
        paths.append(meta)
    if wrong:
        raise ArchiveMismatch(wrong)
    if not owned_tag:  # py-rattler tags the prefix as a cache; no package installed it
        (prefix / CACHE_TAG).unlink(missing_ok=True)
    return paths


_ANACONDA_ORG = "https://conda.anaconda.org/"


def history_text(records: list[dict[str, Any]], specs: list[str], now: float) -> str:
    """One conda ``history`` revision creating the environment: every package added as
    ``+<channel>::<name>-<version>-<build>`` and the requested ``specs``."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    lines = [f"==> {stamp} <==", "# cmd: envbuild build"]
    for r in sorted(records, key=lambda r: r["name"]):
        channel = r["canonical_channel"].removeprefix(_ANACONDA_ORG)  # conda's canonical name
        lines.append(f"+{channel}/{r['subdir']}::{r['name']}-{r['version']}-{r['build']}")
    lines.append(f"# update specs: {specs!r}")
    return "\n".join(lines) + "\n"


def write_history(prefix: Path, records: list[dict[str, Any]], specs: list[str]) -> None:
    """Write ``conda-meta/history`` (mode 0644) for a freshly created environment."""
    path = prefix / "conda-meta" / "history"
    path.write_text(history_text(records, specs, time.time()))
    os.chmod(path, 0o644)
