"""From a rotting conda environment to a recipe: what the user asked for (not the transitive
pile), where it came from, what pip added, what to import to check it; and afterwards how the
rebuilt environment differs from the old one.

Requested specs come from ``conda-meta/history`` (conda's format: ``# update specs: [...]``,
``# install specs``, ``# remove specs``, ``# neutered specs``; what ``conda env export
--from-history`` reads); without usable history (pixi, conda-pack, rattler), from the installed
packages no other installed package depends on. Reads the old prefix only; never writes to it.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envbuild.prefix import site_packages
from envbuild.prefix.doctor import (
    Installed,
    added_by_conda,
    channel_name,
    channels_of,
    first_channel,
    owners,
)
from envbuild.prefix.findings import DoctorError
from envbuild.util.guard import guarded

_SPECS_LINE = re.compile(r"^#\s*(update|install|create|remove|uninstall|neutered) specs:\s*(.*)$")


@dataclass(frozen=True, slots=True)
class Adoption:
    """The recipe an old prefix becomes: channels (first channel first), conda specs, PyPI
    requirements (``name==version`` of what pip installed), smoke imports; ``source`` says
    where the specs came from ("history" or "leaves")."""

    channels: tuple[str, ...]
    dependencies: tuple[str, ...]
    pypi_dependencies: tuple[str, ...]
    imports: tuple[str, ...]
    source: str


def requested_specs(history: Path) -> dict[str, str]:
    """name -> the last spec the user asked for, from conda's history file (removals
    applied). Raises DoctorError naming the file and line for a specs line it cannot read."""
    import rattler

    specs: dict[str, str] = {}
    if not history.is_file():
        return specs
    for n, line in enumerate(history.read_text(errors="replace").splitlines(), 1):
        m = _SPECS_LINE.match(line.strip())
        if not m:
            continue
        try:
            listed = ast.literal_eval(m.group(2))
            if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
                raise ValueError("not a list of strings")
        except (ValueError, SyntaxError) as e:
            msg = f"{history}:{n}: cannot read the specs line ({e}): {line.strip()[:120]}"
            raise DoctorError(msg) from None
        for spec in listed:
            ms = guarded(rattler.MatchSpec, spec, strict=False)
            if isinstance(ms, BaseException):
                msg = f"{history}:{n}: {spec!r} is not a match spec ({ms})"
                raise DoctorError(msg) from None
            name = ms.name
            if name is None:
                continue
            if m.group(1) in ("remove", "uninstall"):
                specs.pop(name.normalized, None)
            elif m.group(1) != "neutered":
                specs[name.normalized] = spec
    return specs


def leaves(installed: list[Installed]) -> list[str]:
    """Names of installed packages no other installed package depends on; the ``pip``
    conda adds to python's depends (:func:`envbuild.prefix.doctor.added_by_conda`) does not
    count, so an installed pip stays a leaf as in an environment built without conda."""
    import rattler

    needed: set[str] = set()
    for i in installed:
        for dep in i.data.get("depends", []):
            if added_by_conda(i.data, dep):
                continue
            ms = guarded(rattler.MatchSpec, dep, strict=False)
            if not isinstance(ms, BaseException) and ms.name is not None:
                needed.add(ms.name.normalized)
    return sorted(i.name for i in installed if i.name not in needed)


def plan(prefix: Path, installed: list[Installed]) -> Adoption:
    """The :class:`Adoption` of ``prefix`` (pure apart from reading the prefix)."""
    history = requested_specs(prefix / "conda-meta" / "history")
    by_name = {i.name: i for i in installed}
    history = {n: s for n, s in history.items() if n in by_name}  # what is still there
    source = "history" if history else "leaves"
    first = first_channel(prefix, installed)
    specs = [recipe_spec(s, first) for s in history.values()] or leaves(installed)
    wanted = list(history) or specs
    counts = Counter(channels_of(prefix, installed).values())
    channels = tuple(c for c in dict.fromkeys([first, *(c for c, _ in counts.most_common())]) if c)
    conda_dirs = site_packages.owned_dirs(owners(installed))
    pypi: dict[str, str] = {}  # name -> version; of duplicate dist-infos, the newest
    imports: dict[str, None] = {}
    for d in site_packages.distributions(prefix):
        by_pip = site_packages.installed_by_pypi_tool(d, conda_dirs)
        if by_pip and d.name not in by_name and not d.editable:
            if d.name not in pypi or _newer(d.version, pypi[d.name]):
                pypi[d.name] = d.version
            imports.update(dict.fromkeys(site_packages.top_level_modules(prefix, d.files)))
    for name in wanted:
        files = tuple(e["_path"] for e in by_name[name].paths())
        imports.update(dict.fromkeys(site_packages.top_level_modules(prefix, files)))
    requirements = tuple(f"{n}=={v}" for n, v in sorted(pypi.items()))
    return Adoption(channels, tuple(specs), requirements, tuple(imports), source)


def recipe_spec(spec: str, first: str) -> str:
    """A history spec as a recipe line. conda records an explicit install's packages as
    ``<channel>/<subdir>::<name>==<version>=<build>``, which the solver's strict parser
    refuses: such a spec (or any naming a channel or subdir) is rewritten from py-rattler's
    lenient reading as ``[<channel>::]<name> [<version> [<build>]]``, the subdir dropped (a
    recipe locks for several platforms) and the channel kept only if it is not ``first``
    (the recipe's first channel wins anyway, strict priority). Other specs are unchanged."""
    import rattler

    ms = rattler.MatchSpec(spec, strict=False)
    plain = "::" not in spec and "[" not in spec
    if plain and not isinstance(guarded(rattler.MatchSpec, spec, strict=True), BaseException):
        return spec
    name = ms.name.normalized if ms.name else spec
    version = str(ms.version) if ms.version is not None else ""
    build = str(ms.build) if ms.build is not None else ""
    words = [name, version or ("*" if build else ""), build]
    text = " ".join(w for w in words if w)
    channel = channel_name(ms.channel.base_url) if ms.channel is not None else ""
    return f"{channel}::{text}" if channel and channel != first else text


def _newer(a: str, b: str) -> bool:
    """True if PyPI version ``a`` is newer than ``b`` (PEP 440; unparsable ones compare as
    strings)."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) > Version(b)
    except InvalidVersion:
        return a > b


def recipe_text(name: str, adoption: Adoption, platform: str, prefix: Path) -> str:
    """recipes/NAME.yml for ``adoption``, with a header saying where it came from."""
    import yaml

    doc: dict[str, Any] = {
        "name": name,
        "channels": list(adoption.channels),
        "platforms": [platform],
        "dependencies": list(adoption.dependencies),
    }
    if adoption.pypi_dependencies:
        doc["pypi-dependencies"] = list(adoption.pypi_dependencies)
    if adoption.imports:
        doc["smoke"] = {"imports": list(adoption.imports)}
    header = (
        f"# Adopted from {prefix} by `doit adopt` (specs from its {adoption.source}).\n"
        "# Review it, then: doit lock env=NAME && doit build env=NAME\n"
    ).replace("NAME", name)
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def pip_installed(prefix: Path, installed: list[Installed]) -> dict[str, dict[str, str]]:
    """``<name> (pypi)`` -> {version} for the distributions a PyPI installer put in ``prefix``
    (not conda's), in the shape :func:`compare` reads."""
    conda_dirs = site_packages.owned_dirs(owners(installed))
    out = {}
    for d in site_packages.distributions(prefix):
        if d.metadata_dir not in conda_dirs:
            out[f"{d.name} (pypi)"] = {"version": d.version}
    return out


def compare(
    old: list[Installed],
    new: list[Installed],
    old_pip: dict[str, dict[str, str]] | None = None,
    new_pip: dict[str, dict[str, str]] | None = None,
) -> list[dict[str, str]]:
    """Package by package (conda records, then PyPI distributions): same, upgraded,
    downgraded, rebuilt (same version, other build), removed, added. Versions compared with
    py-rattler's conda version order."""
    import rattler

    before: dict[str, Any] = {i.name: i.data for i in old} | (old_pip or {})
    after: dict[str, Any] = {i.name: i.data for i in new} | (new_pip or {})
    rows = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a is None or b is None:
            kind = "added" if a is None else "removed"
        elif a.get("version") == b.get("version"):
            kind = "same" if a.get("build") == b.get("build") else "rebuilt"
        else:
            older = rattler.Version(str(a["version"])) < rattler.Version(str(b["version"]))
            kind = "upgraded" if older else "downgraded"
        rows.append({
            "name": name,
            "change": kind,
            "old": f"{a['version']} {a.get('build', '')}".strip() if a else "",
            "new": f"{b['version']} {b.get('build', '')}".strip() if b else "",
        })  # fmt: skip
    return rows
