"""Child process that runs py-rattler's async calls: ``python -m envbuild._rattler_worker``.

Why a child process: on our machines 2-6% of short Python processes that made async py-rattler
calls crash at interpreter exit (SIGSEGV or a ``PyGILState_Release`` fatal error) after their
work is done. The worker therefore writes its result file atomically and leaves with
``os._exit``, skipping the interpreter finalisation where the crash happens; the parent
(:mod:`envbuild.rattler_client`) trusts the result file, not the exit status.

Protocol: ``python -m envbuild._rattler_worker OP REQUEST.json RESULT.json``. The result is
``{"ok": <value>}`` or ``{"error": {"type": <exception class>, "message": str, ...}}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import rattler
from rattler.index import index_fs


def _channels(urls: list[str]) -> list[rattler.Channel]:
    return [rattler.Channel(u) for u in urls]


def _virtual_packages(items: list[list[str]] | None) -> list[rattler.GenericVirtualPackage] | None:
    if items is None:
        return None
    return [
        rattler.GenericVirtualPackage(
            rattler.PackageName(name), rattler.Version(version), rattler.BuildString(build or "0")
        )
        for name, version, build in items
    ]


def _record_json(r: rattler.RepoDataRecord) -> dict[str, Any]:
    j = r.to_json()
    return json.loads(j) if isinstance(j, str) else dict(j)


async def _names(req: dict[str, Any], gateway: rattler.Gateway) -> list[str]:
    try:
        res = await gateway.names(_channels(req["channels"]), [req["platform"], "noarch"])
        return sorted(n.normalized if hasattr(n, "normalized") else str(n) for n in res)
    except Exception:  # best effort: only used for did-you-mean hints
        return []


async def solve(req: dict[str, Any]) -> list[dict[str, Any]]:
    """Solve ``req["specs"]`` for ``req["platform"]`` over ``req["channels"]`` (strict priority)."""
    gateway = rattler.Gateway(cache_dir=req.get("cache_dir"))
    try:
        records = await rattler.solve(
            _channels(req["channels"]),
            req["specs"],
            gateway=gateway,
            platforms=[req["platform"], "noarch"],
            virtual_packages=_virtual_packages(req.get("virtual_packages")),
            channel_priority=rattler.ChannelPriority.Strict,
            timeout=None,
        )
    except Exception as e:
        e.names = await _names(req, gateway)  # type: ignore[attr-defined]
        raise
    return [_record_json(r) for r in records]


def _repodata_record(j: dict[str, Any]) -> rattler.RepoDataRecord:
    pr = rattler.PackageRecord(
        name=j["name"],
        version=j["version"],
        build=rattler.BuildString(j["build"]),
        build_number=int(j.get("build_number", 0)),
        subdir=j["subdir"],
        depends=list(j.get("depends", [])),
        md5=bytes.fromhex(j["md5"]),
        sha256=bytes.fromhex(j["sha256"]),
    )
    return rattler.RepoDataRecord(pr, j["fn"], j["url"], j["channel"])


async def install(req: dict[str, Any]) -> int:
    """Install exactly ``req["records"]`` into ``req["prefix"]``; no solve. Returns the count."""
    records = [_repodata_record(j) for j in req["records"]]
    await rattler.install(
        records,
        req["prefix"],
        cache_dir=req.get("cache_dir"),
        platform=rattler.Platform(req["platform"]) if req.get("platform") else None,
        show_progress=False,
        execute_link_scripts=False,
    )
    return len(records)


async def index(req: dict[str, Any]) -> str:
    """Write repodata.json for every subdir of the local channel ``req["channel_dir"]``."""
    await index_fs(Path(req["channel_dir"]), write_zst=False, write_shards=False, force=True)
    return req["channel_dir"]


OPS = {"solve": solve, "install": install, "index": index}


def _write(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def main(argv: list[str]) -> None:
    op, req_path, res_path = argv
    req = json.loads(Path(req_path).read_text())
    try:
        value = asyncio.run(OPS[op](req))
        payload: dict[str, Any] = {"ok": value}
    except Exception as e:
        payload = {
            "error": {
                "type": type(e).__name__,
                "message": str(e),
                "names": getattr(e, "names", []),
                "traceback": traceback.format_exc(),
            }
        }
    _write(Path(res_path), payload)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
