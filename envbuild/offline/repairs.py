"""Repairs of what whl2conda writes that conda's installers cannot install as pip would.

Applied to every converted wheel's members before it is written into the offline channel
(:func:`envbuild.offline.channel._placed`, through
:func:`envbuild.offline.archives.rewrite_conda`); a package that needs none is unchanged:

* an entry point with the deprecated extras suffix (``watchmedo = watchdog.watchmedo:main
  [watchmedo]``, https://packaging.python.org/en/latest/specifications/entry-points/) loses
  it, as pip ignores it: rattler refuses to link ``info/link.json`` otherwise;
* a binary wheel tagged for any Python 3 (``lightgbm-4.7.0-py3-none-manylinux_2_28_x86_64``)
  lands in ``lib/python3/site-packages``, which no interpreter reads: its files move to the
  channel's ``lib/pythonX.Y/site-packages`` (the channel has one Python), in the package and
  in ``info/paths.json`` and ``info/files``.
"""

from __future__ import annotations

import json
import re
import tarfile

from envbuild.offline.archives import Members

_WRONG_SITE = "lib/python3/site-packages/"


def _entry_points_fixed(data: bytes) -> bytes | None:
    """``info/link.json`` without entry point extras, or None when it has none."""
    doc = json.loads(data or b"{}")
    points = (doc.get("noarch") or {}).get("entry_points")
    if not isinstance(points, list):
        return None
    fixed = [re.sub(r"\s*\[[^\]]*\]\s*$", "", str(p)) for p in points]
    if fixed == points:
        return None
    doc["noarch"]["entry_points"] = fixed
    return json.dumps(doc, indent=2, sort_keys=True).encode()


def _moved(path: str, site: str) -> str:
    return site + path[len(_WRONG_SITE) :] if path.startswith(_WRONG_SITE) else path


def _listing_fixed(name: str, data: bytes, site: str) -> bytes:
    if name == "info/files":
        lines = [_moved(n, site) for n in data.decode().split("\n") if n]
        return ("\n".join(lines) + "\n").encode()
    doc = json.loads(data)
    for entry in doc.get("paths", []):
        entry["_path"] = _moved(str(entry["_path"]), site)
    return json.dumps(doc, indent=2, sort_keys=True).encode()


def _with(
    member: tarfile.TarInfo, data: bytes, name: str | None = None
) -> tuple[tarfile.TarInfo, bytes]:
    if name is not None:
        member.name = name
    member.size = len(data)
    return member, data


def repaired(pkg: Members, info: Members, python: str) -> tuple[Members, Members]:
    """``(pkg, info)`` members of a converted wheel with the repairs of the module docstring;
    ``python`` is the channel's ``X.Y``. Raises ValueError for an ``info/link.json`` or
    ``info/paths.json`` that is not JSON."""
    site = f"lib/python{python}/site-packages/"
    misplaced = any(m.name.startswith(_WRONG_SITE) for m, _ in pkg)
    out_info: Members = []
    for member, data in info:
        if member.name == "info/link.json" and data is not None:
            fixed = _entry_points_fixed(data)
            out_info.append(_with(member, fixed) if fixed is not None else (member, data))
        elif misplaced and member.name in ("info/files", "info/paths.json") and data is not None:
            out_info.append(_with(member, _listing_fixed(member.name, data, site)))
        else:
            out_info.append((member, data))
    if misplaced:
        for member, _ in pkg:
            member.name = _moved(member.name, site)
    return pkg, out_info


__all__ = ["repaired"]
