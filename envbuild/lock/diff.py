"""What a relock changed: per platform, packages added, removed, upgraded, downgraded or
rebuilt (same version, new build), printed and saved as Markdown and JSON.

Versions compare with conda's version ordering (py-rattler's ``Version``) for conda packages and
PEP 440 for pip packages.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from envbuild.util.fs import atomic_write

if TYPE_CHECKING:  # conda-lock's models cost ~0.5 s to import
    from conda_lock.lockfile.v2prelim.models import Lockfile

KINDS = ("added", "removed", "upgraded", "downgraded", "rebuilt")


@dataclass(frozen=True, slots=True)
class Change:
    """One package's change on one platform; ``old``/``new`` are ``version build`` or ''."""

    platform: str
    manager: str
    name: str
    kind: str
    old: str
    new: str


def _entries(lock: Lockfile | None) -> dict[tuple[str, str, str], tuple[str, str]]:
    if lock is None:
        return {}
    return {(p.platform, p.manager, p.name): (p.version, p.build or "") for p in lock.package}


def _newer(manager: str, a: str, b: str) -> bool:
    """True if version ``b`` is newer than ``a``."""
    if manager == "pip":
        from packaging.version import InvalidVersion, Version

        try:
            return Version(b) > Version(a)
        except InvalidVersion:
            return b > a
    import rattler

    return bool(rattler.Version(b) > rattler.Version(a))


def diff(old: Lockfile | None, new: Lockfile) -> list[Change]:
    """The changes from ``old`` (None: nothing locked before) to ``new``, sorted by platform,
    kind and name. Pure."""
    before, after = _entries(old), _entries(new)
    changes = []
    for key in sorted(set(before) | set(after)):
        platform, manager, name = key
        o, n = before.get(key), after.get(key)
        if o == n:
            continue
        if o is None or n is None:
            kind = "added" if o is None else "removed"
        elif o[0] == n[0]:
            kind = "rebuilt"
        else:
            kind = "upgraded" if _newer(manager, o[0], n[0]) else "downgraded"
        fmt = lambda v: " ".join(x for x in v if x) if v else ""  # noqa: E731
        changes.append(Change(platform, manager, name, kind, fmt(o), fmt(n)))
    return sorted(changes, key=lambda c: (c.platform, KINDS.index(c.kind), c.name))


def to_markdown(recipe: str, changes: list[Change]) -> str:
    """A Markdown report: one table per platform."""
    lines = [f"# Lock changes: {recipe}", ""]
    if not changes:
        return "\n".join([*lines, "No package changed.", ""])
    for platform in sorted({c.platform for c in changes}):
        lines += [f"## {platform}", "", "| change | package | old | new |", "|---|---|---|---|"]
        for c in changes:
            if c.platform == platform:
                name = c.name if c.manager == "conda" else f"{c.name} (pypi)"
                lines.append(f"| {c.kind} | {name} | {c.old or '-'} | {c.new or '-'} |")
        lines.append("")
    return "\n".join(lines)


def summary(changes: list[Change]) -> str:
    """One line: counts per kind, e.g. ``2 upgraded, 1 added``."""
    counts = {k: sum(c.kind == k for c in changes) for k in KINDS}
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no change"


def write_reports(report_dir: Path, recipe: str, changes: list[Change]) -> tuple[Path, Path]:
    """Write ``<report_dir>/<recipe>.lock-diff.md`` and ``.json`` atomically; return both."""
    md = report_dir / f"{recipe}.lock-diff.md"
    js = report_dir / f"{recipe}.lock-diff.json"
    atomic_write(md, to_markdown(recipe, changes))
    atomic_write(
        js, json.dumps({"recipe": recipe, "changes": [asdict(c) for c in changes]}, indent=2)
    )
    return md, js
