"""A health check for any conda prefix (built by envbuild, conda, mamba, micromamba, pixi, or
unpacked from conda-pack), with no lockfile: what its conda-meta records promise against what
is on disk, what pip did beside conda, whether the installed set satisfies its own
``depends``/``constrains``, where its packages came from, and whether the interpreter works.

Record format: conda's ``conda-meta/<name>-<version>-<build>.json`` (``paths_data`` with
``sha256``/``sha256_in_prefix``/``prefix_placeholder``,
https://docs.conda.io/projects/conda/en/latest/dev-guide/deep-dives/install.html), parsed with
py-rattler's ``PrefixRecord``; dependencies matched with py-rattler's ``MatchSpec``. Reads
only; runs the prefix's interpreter and ``ldd``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from envbuild.prefix import site_packages
from envbuild.prefix.files import check_file, record_entries, site_packages_dir
from envbuild.prefix.findings import ADVICE, DoctorError, Finding, finding
from envbuild.prefix.meta import META, read_record, record_files
from envbuild.prefix.python import interpreter_findings
from envbuild.recipe.model import current_subdir
from envbuild.util.guard import guarded


@dataclass(frozen=True, slots=True)
class Installed:
    """A conda-meta record: the raw JSON, py-rattler's PrefixRecord, the file, and the
    environment's site-packages directory (prefix-relative, for noarch: python paths)."""

    data: dict[str, Any]
    record: Any  # rattler.PrefixRecord
    file: Path
    site: str = ""

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def label(self) -> str:
        return f"{self.data['name']} {self.data.get('version', '?')} {self.data.get('build', '')}"

    def paths(self) -> list[dict[str, Any]]:
        """``paths_data.paths`` with prefix-relative paths, or the plain ``files`` list when
        a tool wrote no paths_data (:func:`envbuild.prefix.files.record_entries`)."""
        return record_entries(self.data, self.site)


def read_records(prefix: Path, malformed: list[Finding] | None = None) -> list[Installed]:
    """Every conda-meta record of ``prefix``. Raises DoctorError naming the path or file if it
    is not a conda prefix, or the packages are for another platform than this machine's; a
    record that is unreadable or malformed is a ``malformed-record`` finding appended to
    ``malformed`` if given (the examination goes on), else a DoctorError too."""
    if not (prefix / META).is_dir():
        msg = f"{prefix}: not a conda prefix (no conda-meta/); give the root of the environment"
        raise DoctorError(msg)
    out = []
    for f in record_files(prefix):
        read = guarded(_read, f)  # OSError, JSON errors, py-rattler's parse errors
        if isinstance(read, BaseException):
            problem = f"unreadable or malformed conda-meta record ({type(read).__name__}: {read})"
            if malformed is None:
                raise DoctorError(f"{f}: {problem}") from None
            rel = os.path.relpath(f, prefix)
            malformed.append(finding("malformed-record", f.stem, rel, problem[:300]))
            continue
        out.append(Installed(*read, f))
    here = current_subdir()
    foreign = sorted({str(i.data.get("subdir")) for i in out} - {here, "noarch", "None"})
    if foreign:
        msg = f"{prefix}: its packages are for {', '.join(foreign)}; this machine is {here}"
        raise DoctorError(msg)
    site = site_packages_dir(i.data for i in out)
    return [replace(i, site=site) for i in out]


def _read(path: Path) -> tuple[dict[str, Any], Any]:
    """The record in file ``path``, raw and as py-rattler's PrefixRecord."""
    import rattler

    return read_record(path), rattler.PrefixRecord.from_path(path)


# What conda-unpack never rewrites: it skips bin/python* so as not to edit a running
# interpreter (conda_pack/core.py, Packer.finish), python3.X-config included.
_UNPACK_SKIPS = re.compile(r"^bin/python")


def _files(prefix: Path, installed: list[Installed]) -> list[Finding]:
    out: list[Finding] = []
    real = str(prefix.resolve())
    moved: list[str] = []
    placed = False  # a file with a prefix placeholder names this prefix: installed or relocated
    for i in installed:
        entries = i.paths()
        missing = [e["_path"] for e in entries if not os.path.lexists(prefix / e["_path"])]
        if entries and len(missing) == len(entries):
            out.append(
                finding(
                    "half-installed",
                    i.label,
                    "",
                    f"record {i.file.name} lists {len(entries)} files; none exist",
                )
            )
            continue
        out += [
            finding("missing-file", i.label, m, "listed in conda-meta, not on disk")
            for m in missing
        ]
        for e in entries:
            if e["_path"] in missing:
                continue
            state = check_file(prefix / e["_path"], e, real)
            if state == "modified":
                out.append(
                    finding("modified-file", i.label, e["_path"], "sha256 differs from the record")
                )
            elif state == "moved":
                moved.append(e["_path"])
            elif state == "ok" and e.get("prefix_placeholder"):
                placed = True
    skipped = [m for m in moved if _UNPACK_SKIPS.match(m)]
    if placed and moved and len(skipped) == len(moved):
        # relocated by conda-unpack, which leaves these alone by design: not a moved prefix
        detail = "still names another prefix (conda-unpack leaves bin/python* alone)"
        out += [finding("not-relocated", "", m, detail) for m in moved]
    elif moved:
        out.append(
            finding(
                "moved-prefix",
                "",
                moved[0],
                f"{len(moved)} file(s) still name another prefix, not {real}",
            )
        )
    return out


def owners(installed: list[Installed]) -> dict[str, Installed]:
    """Prefix-relative path -> the record that lists it."""
    return {e["_path"]: i for i in installed for e in i.paths()}


def _pip(prefix: Path, installed: list[Installed]) -> list[Finding]:
    out: list[Finding] = []
    owner = owners(installed)
    conda_dirs = site_packages.owned_dirs(owner)
    dists = site_packages.distributions(prefix)
    conda_names = {site_packages.canonical(i.name) for i in installed}
    by_name: dict[str, list[site_packages.Distribution]] = {}
    for d in dists:
        by_name.setdefault(d.name, []).append(d)
        if d.editable:
            out.append(finding("editable", d.name, d.metadata_dir, f"{d.name} {d.version}"))
        conda_owned = d.metadata_dir in conda_dirs
        if not site_packages.installed_by_pypi_tool(d, conda_dirs):
            continue
        if not conda_owned:  # pip re-installed over conda's own metadata: pip-overwrote says it
            out.append(
                finding(
                    "pip-installed",
                    d.name,
                    d.metadata_dir,
                    f"{d.name} {d.version} (INSTALLER: {d.installer or 'none'})",
                )
            )
        overwritten: dict[str, list[str]] = {}
        for f in d.files:
            if f in owner:
                overwritten.setdefault(owner[f].label, []).append(f)
        for pkg, files in overwritten.items():
            out.append(
                finding(
                    "pip-overwrote",
                    pkg,
                    files[0],
                    f"{d.name} {d.version} replaced {len(files)} file(s) of {pkg}",
                )
            )
        if d.name in conda_names and not conda_owned:
            out.append(
                finding(
                    "pip-shadows",
                    d.name,
                    d.metadata_dir,
                    f"pip's {d.name} {d.version} beside conda's package",
                )
            )
    for name, group in by_name.items():
        if len(group) > 1:
            out.append(
                finding(
                    "duplicate-dist",
                    name,
                    group[0].metadata_dir,
                    ", ".join(g.metadata_dir for g in group),
                )
            )
    real = prefix.resolve()
    for pth, added in site_packages.pth_paths(prefix):
        if not Path(added).is_relative_to(real):
            out.append(finding("path-outside", "", pth, f"adds {added}"))
    return out


def added_by_conda(data: dict[str, Any], spec: str) -> bool:
    """True if ``spec``, one of the conda-meta record ``data``'s ``depends``, is the ``pip``
    conda itself adds to python 2.* and 3.*: with ``add_pip_as_python_dependency`` on (its
    default) conda appends the bare ``"pip"`` to python's depends as it reads a channel's
    repodata (conda 26.7.1, ``conda/core/subdir_data.py``), and conda-meta keeps that record
    (an explicit file's too, from the package cache's ``info/repodata_record.json``). The
    package's own ``info/index.json`` has no such entry, and conda's solver drops it again
    when pip is not installed (``conda/resolve.py``, ``Resolve.bad_installed``)."""
    version = str(data.get("version", ""))
    return spec == "pip" and data.get("name") == "python" and version.startswith(("2.", "3."))


def _dependencies(installed: list[Installed]) -> list[Finding]:
    import rattler

    by_name = {i.name: i for i in installed}
    out = []
    for i in installed:
        for kind, specs in (
            ("depends", i.data.get("depends", [])),
            ("constrains", i.data.get("constrains", [])),
        ):
            for spec in specs:
                ms = guarded(rattler.MatchSpec, spec, strict=False)
                if isinstance(ms, BaseException):
                    continue  # a spec py-rattler cannot read: not ours to judge
                name = ms.name.normalized if ms.name else ""
                if not name or name.startswith("__"):
                    continue  # virtual packages describe the machine, not the prefix
                other = by_name.get(name)
                if kind == "depends" and other is None and added_by_conda(i.data, spec):
                    detail = "python's record lists `pip` (conda's add_pip_as_python_dependency)"
                    out.append(finding("implied-pip", i.label, "", f"{detail}; not installed"))
                elif kind == "depends" and (other is None or not ms.matches(other.record)):
                    found = other.label if other else "not installed"
                    out.append(
                        finding(
                            "unsatisfied-depends",
                            i.label,
                            "",
                            f"needs `{spec}`; installed: {found}",
                        )
                    )
                elif kind == "constrains" and other is not None and not ms.matches(other.record):
                    out.append(
                        finding(
                            "violated-constrains",
                            i.label,
                            "",
                            f"constrains `{spec}`; installed: {other.label}",
                        )
                    )
    return out


def channel_name(channel: str) -> str:
    """``https://conda.anaconda.org/conda-forge/`` (or ``.../linux-64``) -> ``conda-forge``;
    other URLs stay URLs (without a trailing subdir)."""
    c = channel.rstrip("/")
    for sub in ("/noarch", f"/{current_subdir()}"):
        c = c.removesuffix(sub)
    return c.removeprefix("https://conda.anaconda.org/")


def channels_of(prefix: Path, installed: list[Installed]) -> dict[str, str]:
    """Record file name -> the channel its package came from, as conda names it: the
    canonical name in conda-meta/history's ``+<channel>/<subdir>::<name>-<version>-<build>``
    lines where the record's ``channel`` URL ends with it (conda writes ``conda-forge`` there
    even when the record names a mirror or a custom ``channel_alias``), else
    :func:`channel_name` of the record's ``channel``."""
    named: dict[str, str] = {}
    history = prefix / "conda-meta" / "history"
    if history.is_file():
        for line in history.read_text(errors="replace").splitlines():
            channel, sep, dist = line[1:].partition("::")
            if line.startswith("+") and sep:
                named[dist.strip()] = channel_name(channel)
    out = {}
    for i in installed:
        url = channel_name(str(i.data.get("channel", "")))
        name = named.get(i.file.name.removesuffix(".json"), "")
        # the record says what is installed now; history's name only names that same channel
        out[i.file.name] = name if name and (url == name or url.endswith("/" + name)) else url
    return out


def first_channel(prefix: Path, installed: list[Installed]) -> str:
    """The environment's first channel: the first ``-c``/``--channel`` in conda-meta/history's
    commands, else the channel most of its packages came from."""
    history = prefix / "conda-meta" / "history"
    if history.is_file():
        for line in history.read_text(errors="replace").splitlines():
            if line.startswith("# cmd:"):
                words = line.split()
                for a, b in itertools.pairwise(words):
                    if a in ("-c", "--channel"):
                        return channel_name(b)
    counts = Counter(channels_of(prefix, installed).values())
    return counts.most_common(1)[0][0] if counts else ""


def _channels(prefix: Path, installed: list[Installed]) -> list[Finding]:
    channels = channels_of(prefix, installed)
    names = {i.label: channels[i.file.name] for i in installed}
    used = Counter(names.values())
    if len(used) <= 1:
        return []
    first = first_channel(prefix, installed)
    out = [
        finding("mixed-channels", "", "", ", ".join(f"{c} ({n})" for c, n in used.most_common()))
    ]
    out += [
        finding("other-channel", label, "", f"from {c}; first channel is {first}")
        for label, c in names.items()
        if c != first
    ]
    return out


def examine(prefix: Path) -> list[Finding]:
    """Every finding for the conda prefix at ``prefix``, in the order: files, pip,
    dependencies, channels, interpreter. Raises DoctorError (see :func:`read_records`)."""
    malformed: list[Finding] = []
    installed = read_records(prefix, malformed)
    pip = _pip(prefix, installed)
    reported = {f.detail.removeprefix("adds ") for f in pip if f.kind == "path-outside"}
    return [
        *malformed,
        *_files(prefix, installed),
        *pip,
        *_dependencies(installed),
        *_channels(prefix, installed),
        *interpreter_findings(prefix, reported, frozenset(owners(installed))),
    ]


def table(prefix: Path, findings: list[Finding]) -> str:
    """The findings as a text table, then the advice per kind."""
    if not findings:
        return f"{prefix}: no findings"
    notes = sum(f.severity == "note" for f in findings)
    rows = [f"{prefix}: {len(findings) - notes} problem(s), {notes} note(s)", ""]
    for f in findings:
        path = re.sub(r"^lib/python[0-9.]+/site-packages/", "site-packages/", f.path)
        note = " (note)" if f.severity == "note" else ""
        rows.append(f"{f.kind:19s} {f.package[:30]:30s} {path[:58]:58s} {f.detail}{note}")
    rows += ["", "what to do:"]
    rows += [f"  {k}: {ADVICE[k]}" for k in dict.fromkeys(f.kind for f in findings)]
    return "\n".join(rows)


def to_json(prefix: Path, findings: list[Finding]) -> str:
    return json.dumps(
        {
            "prefix": str(prefix),
            "findings": [asdict(f) for f in findings],
            "counts": dict(Counter(f.kind for f in findings)),
        },
        indent=2,
    )


__all__ = ["ADVICE", "DoctorError", "Finding", "examine", "table", "to_json"]
