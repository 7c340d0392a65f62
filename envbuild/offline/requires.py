"""Marker-conditional requirements of the offline channel's wheels, kept as conda depends.

whl2conda keeps a wheel's unconditional ``Requires-Dist`` entries and drops (pure wheels) or
evaluates for Python X.Y.0 (binary wheels) those with an environment marker
(``overrides>=5.0; python_version < '3.12'``), so a solve of the converted package never asks
for them. pip evaluates each marker for the interpreter that installs
(https://packaging.python.org/en/latest/specifications/dependency-specifiers/#environment-markers);
the channel has one interpreter and one platform, so the same evaluation is exact here:

* :class:`Target` is the channel's interpreter and subdir; :meth:`Target.environment` the marker
  environment built for it (never the host's kernel or machine, so the same pins give the same
  channel anywhere);
* a marker-conditional requirement that holds is kept; an ``extra == 'x'`` one only when
  something asks for ``package[x]``: the pin file's requirements (``dask[complete]``), or a kept
  requirement of another pinned package (``distributed`` -> ``dask[array]``), whose extra's
  requirements become that package's depends, as pip installs them for it;
* a kept requirement names a pinned distribution, at a pinned version its specifier allows, or
  the build stops with a :class:`~envbuild.errors.ChannelError` naming it and the fix.

Version specifiers become conda match specs as whl2conda writes them (``~=1.2`` ->
``>=1.2,==1.*``; ``===`` -> ``==``).
"""

from __future__ import annotations

import email.parser
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from envbuild.errors import ChannelError
from envbuild.offline.pins import normalize

# whl2conda's reading of a Requires-Dist value (whl2conda.api.converter.requires_dist_re)
_REQUIREMENT = re.compile(
    r"\s*(?P<name>[a-zA-Z0-9_.-]+)\s*(?:\[(?P<extra>.+?)\])?\s*"
    r"(?:\(?(?P<version>[^;]*?)\)?)?\s*(?:;\s*(?P<marker>.*?)\s*)?"
)
_METADATA_MAX = 8 << 20  # bytes of a wheel's METADATA read at most

# conda subdir -> (os_name, sys_platform, platform_system, platform_machine)
_PLATFORMS = {
    "linux-64": ("posix", "linux", "Linux", "x86_64"),
    "linux-aarch64": ("posix", "linux", "Linux", "aarch64"),
    "linux-ppc64le": ("posix", "linux", "Linux", "ppc64le"),
    "osx-64": ("posix", "darwin", "Darwin", "x86_64"),
    "osx-arm64": ("posix", "darwin", "Darwin", "arm64"),
    "win-64": ("nt", "win32", "Windows", "AMD64"),
}


@dataclass(frozen=True, slots=True)
class Target:
    """The interpreter and platform a channel is built for: CPython ``python`` (full version,
    ``3.11.7``) on conda ``subdir`` (``linux-64``)."""

    python: str
    subdir: str

    def environment(self, extra: str = "") -> dict[str, str]:
        """PEP 508 marker environment (every key ``packaging`` knows) for this target, with
        ``extra`` set as pip sets it for the extra being installed (``""``: none).
        ``platform_release`` and ``platform_version`` describe a kernel, which a channel does
        not have: empty. Raises ChannelError for a subdir without a known platform."""
        try:
            os_name, sys_platform, system, machine = _PLATFORMS[self.subdir]
        except KeyError:
            msg = f"offline channel: no marker environment known for platform {self.subdir}"
            raise ChannelError(msg) from None
        short = ".".join(self.python.split(".")[:2])
        return {
            "implementation_name": "cpython",
            "implementation_version": self.python,
            "os_name": os_name,
            "platform_machine": machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": system,
            "platform_version": "",
            "python_full_version": self.python,
            "python_version": short,
            "sys_platform": sys_platform,
            "extra": extra,
        }


def wheel_requires(wheel: Path) -> tuple[str, ...]:
    """The ``Requires-Dist`` values of ``wheel``'s ``*.dist-info/METADATA`` (core metadata,
    https://packaging.python.org/en/latest/specifications/core-metadata/), in file order.
    Raises ChannelError for a wheel without one, or one larger than 8 MiB."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [
                i for i in zf.infolist()
                if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/METADATA")
            ]  # fmt: skip
            if len(names) != 1 or names[0].file_size > _METADATA_MAX:
                msg = f"{wheel.name}: expected one *.dist-info/METADATA of at most 8 MiB"
                raise ChannelError(msg)
            text = zf.read(names[0]).decode("utf-8", errors="replace")
    except (OSError, zipfile.BadZipFile) as e:
        msg = f"{wheel}: cannot read the wheel's metadata: {e}"
        raise ChannelError(msg) from None
    headers = email.parser.Parser().parsestr(text, headersonly=True)
    return tuple(str(v).strip() for v in headers.get_all("Requires-Dist") or ())


def _parsed(dist: str, lines: Iterable[str]) -> list[Requirement]:
    out = []
    for line in lines:
        try:
            out.append(Requirement(line))
        except (InvalidRequirement, InvalidMarker) as e:
            msg = f"{dist}: Requires-Dist {line!r} is not a PEP 508 requirement: {e}"
            raise ChannelError(msg) from None
    return out


def _holds(marker: Marker | None, target: Target, extras: Iterable[str]) -> bool:
    if marker is None:
        return True
    return any(marker.evaluate(target.environment(x)) for x in ("", *sorted(extras)))


def conda_spec(line: str, renames: Mapping[str, str] | None = None) -> str:
    """The match spec whl2conda writes for the ``Requires-Dist`` value ``line``: the name
    renamed as conda-forge spells it (``renames``: normalized PyPI name -> conda name), then
    the version clauses as written, spaces removed (``~=1.2.3`` -> ``>=1.2.3,==1.2.*``,
    ``===`` -> ``==``, a leading ``v`` dropped), so that a kept requirement whl2conda kept
    too is the same string. Raises ChannelError for a line that is not a requirement."""
    m = _REQUIREMENT.fullmatch(line)
    if m is None:
        msg = f"Requires-Dist {line!r} is not a PEP 508 requirement"
        raise ChannelError(msg)
    name = (renames or {}).get(normalize(m["name"]), m["name"])
    clauses = []
    for clause in re.split(r"\s*,\s*", (m["version"] or "").strip()):
        c = re.fullmatch(r"([=<>!~]+)\s*v?(\S+)", clause)
        if c is None:
            clauses.append(clause)
            continue
        op, version = c.groups()
        if op == "~=":
            release = re.match(r"\d+(?:\.\d+)*", version)
            parts = release.group(0).split(".") if release else []
            clauses.append(
                f">={version}" + (f",=={'.'.join(parts[:-1])}.*" if len(parts) > 1 else "")
            )
        else:
            clauses.append(f"{'==' if op == '===' else op}{version}")
    return f"{name} {','.join(c for c in clauses if c)}"


def solver_spelling(dep: str) -> str:
    """``dep`` with each ``==X.*`` clause written ``X.*``: conda and rattler read a lone
    ``==X.*`` as "starts with X", but rattler reads it as ``==X`` inside an and-list
    (``>=4.0.16,==4.0.*`` -> ``>=4.0.16,==4.0``, which no 4.0.16 matches)."""
    name, sep, rest = dep.partition(" ")
    clauses = [re.sub(r"^==(.+\.\*)$", r"\1", c) for c in rest.split(",")]
    return name + sep + ",".join(clauses)


def _allows(spec: SpecifierSet, version: str) -> bool:
    try:
        return spec.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True  # not a PEP 440 version: the solve decides


@dataclass(frozen=True, slots=True)
class Dist:
    """One pinned wheel: its version, the conda package name it is converted to, and its
    ``Requires-Dist`` lines."""

    version: str
    conda_name: str
    requires: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Depends:
    """What to change in a converted wheel's ``depends``: match specs to ``add``, and those to
    ``drop`` (whl2conda's spelling of a marker-conditional requirement that does not hold
    here: whl2conda evaluates binary wheels' markers for the wheel tag's Python, 3.7 for a
    ``cp37-abi3`` wheel, and keeps ``numpy<2.0; python_version < '3.9'``)."""

    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()


def added_depends(
    dists: Mapping[str, Dist],
    target: Target,
    requested: Iterable[str] = (),
    where: str = "offline pins",
    renames: Mapping[str, str] | None = None,
) -> dict[str, Depends]:
    """The changes to each converted wheel's depends (module docstring).

    Inputs: normalized distribution name -> :class:`Dist` for every pinned wheel; the channel's
    :class:`Target`; the pin file's requirements (PEP 508 strings; their extras are requested
    for the named distribution); ``where`` names the pin file in messages; ``renames``
    (normalized PyPI name -> conda name) as whl2conda applies them. Output: name ->
    :class:`Depends`, each list in ``Requires-Dist`` order, without repeats. Raises
    ChannelError when a kept requirement names a distribution that is not pinned or a
    version the pins do not allow.
    """
    lines = {name: d.requires for name, d in dists.items()}
    parsed = {name: _parsed(name, d.requires) for name, d in dists.items()}
    own_extras: dict[str, set[str]] = {name: set() for name in dists}
    for line in requested:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue  # the pins tool resolved it; a name it cannot parse requests no extra
        own_extras.setdefault(normalize(req.name), set()).update(map(normalize, req.extras))
    out: dict[str, Depends] = {}
    for name in sorted(dists):
        holds = [
            r.marker is None or _holds(r.marker, target, own_extras[name]) for r in parsed[name]
        ]
        wanted = {
            conda_spec(ln, renames): None for ln, h in zip(lines[name], holds, strict=True) if h
        }
        drop = {
            conda_spec(ln, renames): None
            for ln, r, h in zip(lines[name], parsed[name], holds, strict=True)
            # whl2conda skips every entry with an extra in its marker
            if not h and r.marker is not None and not re.search(r"\bextra\b", str(r.marker))
        }
        specs: dict[str, None] = {}
        seen: set[tuple[str, str]] = {(name, x) for x in own_extras[name]}
        queue = [
            (name, ln, r)
            for ln, r, h in zip(lines[name], parsed[name], holds, strict=True)
            if (h and r.marker is not None) or (r.marker is None and r.extras)
        ]
        while queue:
            owner, line, req = queue.pop(0)
            dep = normalize(req.name)
            why = f"{owner} {dists[owner].version} requires {line!r}"
            if dep not in dists:
                msg = (
                    f"{where}: {why} (for Python {target.python} on {target.subdir}), but "
                    f"{req.name} is not pinned: re-resolve the pins "
                    f"(.venv/bin/python -m envbuild.offline.pins {where}) or add it"
                )
                raise ChannelError(msg)
            if not _allows(req.specifier, dists[dep].version):
                msg = (
                    f"{where}: {why}, but {dep}=={dists[dep].version} is pinned: re-resolve "
                    f"the pins (.venv/bin/python -m envbuild.offline.pins {where})"
                )
                raise ChannelError(msg)
            if dep != name and (req.marker is not None or owner != name):
                specs.setdefault(conda_spec(line, renames))
            for extra in sorted(map(normalize, req.extras)):
                if (dep, extra) in seen:
                    continue
                seen.add((dep, extra))
                queue += [  # what the extra adds: holds with it, not without
                    (dep, ln, r) for ln, r in zip(lines[dep], parsed[dep], strict=True)
                    if r.marker is not None and r.marker.evaluate(target.environment(extra))
                    and not r.marker.evaluate(target.environment())
                ]  # fmt: skip
        out[name] = Depends(tuple(specs), tuple(d for d in drop if d not in {**wanted, **specs}))
    return out


__all__ = [
    "Depends",
    "Dist",
    "Target",
    "added_depends",
    "conda_spec",
    "solver_spelling",
    "wheel_requires",
]
