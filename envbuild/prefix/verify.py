"""Verify an installed environment against its lockfile and its own ``conda-meta`` records.

Finds, per package and path: locked packages missing, packages the lock does not list (conda or
pip), other versions or builds, deleted files, files whose sha256 differs from the recorded one
(``sha256_in_prefix`` for files rewritten with the prefix at install time), conda files
overwritten by a pip install, editable installs, and a prefix that was moved. Record format:
conda's ``conda-meta/<pkg>.json`` with ``paths_data``
(https://docs.conda.io/projects/conda/en/latest/dev-guide/deep-dives/install.html); pip
metadata: the installed-project format of https://packaging.python.org/en/latest/specifications/recording-installed-packages/.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from envbuild.prefix.files import record_entries, site_packages_dir
from envbuild.prefix.meta import records_by_name
from envbuild.records import CLEAN, VerifyReport
from envbuild.util.fs import file_sha256

if TYPE_CHECKING:  # conda-lock's models cost ~0.5 s to import
    from conda_lock.lockfile.v2prelim.models import Lockfile

KINDS = (
    "not-built",
    "missing-package",
    "extra-package",
    "version-mismatch",
    "missing-file",
    "modified-file",
    "pip-overwrite",
    "editable",
    "prefix-moved",
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference between an environment and its lock."""

    kind: str
    package: str
    path: str
    detail: str


def dist_name(info: Path) -> str:
    """The canonical distribution name of a ``<name>-<version>.dist-info`` directory."""
    return canonicalize_name(info.name.removesuffix(".dist-info").rsplit("-", 1)[0])


def dist_infos(prefix: Path) -> list[Path]:
    """Every ``.dist-info`` directory in the prefix's site-packages."""
    return sorted(prefix.glob("lib/python*/site-packages/*.dist-info"))


def pip_dists(prefix: Path, conda_files: set[str]) -> dict[str, Path]:
    """canonical name -> .dist-info directory, for distributions not installed by conda."""
    out: dict[str, Path] = {}
    for info in dist_infos(prefix):
        rel = info.relative_to(prefix).as_posix()
        if f"{rel}/METADATA" in conda_files or f"{rel}/RECORD" in conda_files:
            continue
        out[dist_name(info)] = info
    return out


def record_paths(prefix: Path, info: Path) -> set[str]:
    """Prefix-relative paths listed in the distribution's RECORD (``..`` entries normalised,
    symlinks not followed; entries outside the prefix dropped)."""
    record = info / "RECORD"
    if not record.exists():
        return set()
    base = os.path.relpath(info.parent, prefix)
    paths = set()
    for line in record.read_text().splitlines():
        rel = line.split(",", 1)[0]
        if rel:
            path = os.path.normpath(os.path.join(base, rel))
            if not path.startswith(".."):
                paths.add(Path(path).as_posix())
    return paths


def conda_owned_files(prefix: Path) -> dict[str, str]:
    """prefix-relative path -> name of the conda package that installed it."""
    return {f: name for name, rec in records_by_name(prefix).items() for f in rec.get("files", [])}


def _is_editable(info: Path) -> bool:
    direct = info / "direct_url.json"
    if direct.exists():
        try:
            return bool(json.loads(direct.read_text()).get("dir_info", {}).get("editable"))
        except ValueError:
            return False
    return False


def _package_findings(
    lock: Lockfile, platform: str, conda: dict[str, dict[str, Any]], pips: dict[str, Path]
) -> list[Finding]:
    out = []
    locked = {p.name: p for p in lock.package if p.platform == platform}
    for name, p in sorted(locked.items()):
        if p.manager == "conda":
            rec = conda.get(name)
            if rec is None:
                out.append(Finding("missing-package", name, "", f"locked {p.version} {p.build}"))
            elif (rec["version"], rec["build"]) != (p.version, p.build):
                out.append(
                    Finding(
                        "version-mismatch",
                        name,
                        "",
                        f"locked {p.version} {p.build}, installed {rec['version']} {rec['build']}",
                    )
                )
        elif canonicalize_name(name) not in pips:
            out.append(Finding("missing-package", name, "", f"locked pip {p.version}"))
    for name in sorted(set(conda) - {n for n, p in locked.items() if p.manager == "conda"}):
        out.append(
            Finding("extra-package", name, "", f"conda {conda[name]['version']} not in the lock")
        )
    pip_locked: dict[str, Any] = {
        canonicalize_name(n): p for n, p in locked.items() if p.manager == "pip"
    }
    for name, info in sorted(pips.items()):
        version = info.name.removesuffix(".dist-info").rsplit("-", 1)[-1]
        if name not in pip_locked:
            out.append(Finding("extra-package", name, info.name, f"pip {version} not in the lock"))
        elif pip_locked[name].version != version:
            out.append(
                Finding(
                    "version-mismatch",
                    name,
                    info.name,
                    f"locked pip {pip_locked[name].version}, installed {version}",
                )
            )
        if _is_editable(info):
            out.append(Finding("editable", name, info.name, "editable (development) install"))
    return out


# path types whose installed content is recorded (conda's PathType: files linked or copied
# from the package, bytecode compiled at install, generated entry points)
_HASHED = ("hardlink", "pyc_file", "unix_python_entry_point", "windows_python_entry_point_script")


def _file_findings(
    prefix: Path, conda: dict[str, dict[str, Any]], pip_owned: dict[str, str]
) -> list[Finding]:
    out = []
    site = site_packages_dir(conda.values())  # conda records noarch: python paths unmapped
    for name, rec in sorted(conda.items()):
        for entry in record_entries(rec, site):
            rel = entry["_path"]
            path = prefix / rel
            if not path.exists() and not path.is_symlink():
                out.append(Finding("missing-file", name, rel, "deleted"))
                continue
            expected = entry.get("sha256_in_prefix") or entry.get("sha256")
            if entry.get("path_type") not in _HASHED or not expected or path.is_symlink():
                continue
            if file_sha256(path) != expected:
                if rel in pip_owned:
                    out.append(
                        Finding(
                            "pip-overwrite",
                            name,
                            rel,
                            f"overwritten by pip package '{pip_owned[rel]}'",
                        )
                    )
                else:
                    out.append(
                        Finding(
                            "modified-file", name, rel, "sha256 differs from the installed file"
                        )
                    )
    return out


def verify_prefix(
    prefix: Path, lock: Lockfile, platform: str, installed_for: str = ""
) -> list[Finding]:
    """Compare the environment at ``prefix`` with ``lock`` (for ``platform``).

    ``installed_for`` is the absolute path the packages were installed for (the build
    marker's ``prefix``); a different real path means the prefix was moved. Output: findings,
    empty for a clean environment. Reads every file of every conda package (sha256).
    """
    if not (prefix / "conda-meta").is_dir():
        return [Finding("not-built", "", str(prefix), "no environment (conda-meta) here")]
    conda = records_by_name(prefix)
    conda_files = {f for rec in conda.values() for f in rec.get("files", [])}
    pips = pip_dists(prefix, conda_files)
    pip_owned = {p: name for name, info in pips.items() for p in record_paths(prefix, info)}
    findings = _package_findings(lock, platform, conda, pips)
    findings += _file_findings(prefix, conda, pip_owned)
    real = str(prefix.resolve())
    if installed_for and installed_for != real:
        findings.append(Finding("prefix-moved", "", real, f"installed for {installed_for}"))
    return findings


def table(findings: list[Finding]) -> str:
    """A fixed-width text table of findings (or a one-line all-clear)."""
    if not findings:
        return "no findings: the environment matches its lock"
    rows = [("KIND", "PACKAGE", "PATH", "DETAIL")] + [
        (f.kind, f.package, f.path, f.detail) for f in findings
    ]
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in rows
    )


def write_report(path: Path, name: str, build_id: str, findings: list[Finding]) -> None:
    """The JSON report (:class:`envbuild.records.VerifyReport`): recipe, build id, status
    (clean/drifted), findings."""
    VerifyReport(
        recipe=name,
        build_id=build_id,
        status="drifted" if findings else CLEAN,
        findings=[asdict(f) for f in findings],
    ).save(path)
