"""What Python's packaging metadata in a prefix says, independent of conda: installed
distributions (``*.dist-info``, ``*.egg-info``) with their installer, files and editable flag,
and the paths ``.pth`` files add.

Formats: the installed-distribution layout
(https://packaging.python.org/en/latest/specifications/recording-installed-packages/:
``INSTALLER``, ``RECORD``, ``direct_url.json``) and the ``site`` module's ``.pth`` rules
(https://docs.python.org/3/library/site.html). Reads only.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Distribution:
    """One installed distribution. ``name`` is canonical (PEP 503); ``metadata_dir`` and
    ``files`` are prefix-relative POSIX paths; ``installer`` is the ``INSTALLER`` file's first
    line ("" if absent); ``editable`` from ``direct_url.json``."""

    name: str
    version: str
    metadata_dir: str
    installer: str
    files: tuple[str, ...]
    editable: bool


PYPI_INSTALLERS = ("pip", "uv", "poetry", "pdm")  # INSTALLER values of PyPI installers


def owned_dirs(paths: Iterable[str]) -> set[str]:
    """Every directory holding (at any depth) one of ``paths`` (prefix-relative): the
    metadata directories a package manager's records own."""
    out: set[str] = set()
    for p in paths:
        parts = p.split("/")[:-1]
        out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def installed_by_pypi_tool(dist: Distribution, conda_dirs: set[str]) -> bool:
    """True if a PyPI installer put ``dist`` there: its metadata is not in ``conda_dirs``
    (:func:`owned_dirs` of the conda records), or a PyPI installer rewrote conda's."""
    return dist.metadata_dir not in conda_dirs or dist.installer.lower() in PYPI_INSTALLERS


def canonical(name: str) -> str:
    """PEP 503 normalisation (``Foo.Bar_baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def site_packages_dirs(prefix: Path) -> list[Path]:
    """``lib/python*/site-packages`` (Unix) and ``Lib/site-packages`` (Windows) that exist."""
    found = sorted((prefix / "lib").glob("python*/site-packages"))
    win = prefix / "Lib" / "site-packages"
    return [*found, *([win] if win.is_dir() else [])]


def _record_files(dist_dir: Path, site: Path, prefix: Path) -> tuple[str, ...]:
    """The files a distribution's ``RECORD`` (relative to site-packages) or, for an egg-info,
    ``installed-files.txt`` (relative to the egg-info) lists, prefix-relative."""
    record, listed = dist_dir / "RECORD", dist_dir / "installed-files.txt"
    if record.is_file():
        with record.open(newline="", errors="replace") as f:
            names, base = [row[0] for row in csv.reader(f) if row and row[0]], site
    elif listed.is_file():
        names, base = listed.read_text(errors="replace").splitlines(), dist_dir
    else:
        return ()
    out = []
    for name in names:
        path = (base / name).resolve()
        try:
            out.append(path.relative_to(prefix.resolve()).as_posix())
        except ValueError:
            out.append(str(path))  # outside the prefix (e.g. a script installed elsewhere)
    return tuple(out)


def distributions(prefix: Path) -> list[Distribution]:
    """Every distribution installed in the prefix's site-packages, in path order."""
    out = []
    for site in site_packages_dirs(prefix):
        for meta in sorted([*site.glob("*.dist-info"), *site.glob("*.egg-info")]):
            headers = meta / ("METADATA" if meta.suffix == ".dist-info" else "PKG-INFO")
            if not headers.is_file():
                continue
            parsed = HeaderParser().parsestr(headers.read_text(errors="replace"))
            installer = meta / "INSTALLER"
            direct = meta / "direct_url.json"
            try:
                url = json.loads(direct.read_text()) if direct.is_file() else {}
            except ValueError:
                url = {}
            lines = installer.read_text(errors="replace").split() if installer.is_file() else []
            out.append(
                Distribution(
                    name=canonical(parsed.get("Name", meta.name.split("-")[0])),
                    version=parsed.get("Version", ""),
                    metadata_dir=meta.relative_to(prefix).as_posix(),
                    installer=lines[0] if lines else "",
                    files=_record_files(meta, site, prefix),
                    editable=bool((url.get("dir_info") or {}).get("editable")),
                )
            )
    return out


def pth_paths(prefix: Path) -> list[tuple[str, str]]:
    """(``.pth`` file, path it adds) for every path line of every ``.pth`` file in the
    prefix's site-packages (``import`` lines and comments skipped, relative paths resolved
    against the site-packages directory, as ``site`` does)."""
    out = []
    for site in site_packages_dirs(prefix):
        for pth in sorted(site.glob("*.pth")):
            for line in pth.read_text(errors="replace").splitlines():
                line = line.strip()
                if not line or line.startswith(("#", "import ", "import\t")):
                    continue
                out.append((pth.relative_to(prefix).as_posix(), str((site / line).resolve())))
    return out


def top_level_modules(prefix: Path, files: tuple[str, ...]) -> list[str]:
    """Importable top-level names among ``files`` (prefix-relative): packages with an
    ``__init__.py`` and plain modules directly in site-packages, private ones left out."""
    sites = [s.relative_to(prefix).as_posix() + "/" for s in site_packages_dirs(prefix)]
    names: dict[str, None] = {}
    for f in files:
        site = next((s for s in sites if f.startswith(s)), None)
        if site is None:
            continue
        parts = f[len(site) :].split("/")
        module = len(parts) == 1 and parts[0].endswith(".py")
        if module or (len(parts) == 2 and parts[1] == "__init__.py"):
            name = parts[0].removesuffix(".py")
            if name.isidentifier() and not name.startswith("_") and name not in ("test", "tests"):
                names[name] = None
    return list(names)
