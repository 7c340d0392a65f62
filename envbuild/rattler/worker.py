"""Child process that runs py-rattler's async calls: ``python -m envbuild.rattler.worker``.

Why a child process: on our machines 2-6% of short Python processes that made async py-rattler
calls crash at interpreter exit (SIGSEGV or a ``PyGILState_Release`` fatal error) after their
work is done. The worker therefore writes its result file atomically and leaves with
``os._exit``, skipping the interpreter finalisation where the crash happens; the parent
(:mod:`envbuild.rattler.client`) trusts the result file, not the exit status.

Protocol: ``python -m envbuild.rattler.worker OP REQUEST.json RESULT.json``, or with no
arguments (started ahead by :func:`envbuild.rattler.client.warm`) the JSON list
``[OP, REQUEST.json, RESULT.json]`` as one line on stdin (end of input: leave). The result is
``{"ok": <value>}`` or ``{"error": {"type": <exception class>, "message": str, ...}}``.

Credentials: a request's ``auth`` maps hosts to the *names* of environment variables; the worker
reads their values, writes py-rattler's auth file (mode 0600, in a private temporary directory
removed at exit) and points ``RATTLER_AUTH_FILE`` at it, so py-rattler's authentication
middleware adds them to requests and no URL ever carries them.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import rattler
from rattler.index import index_fs

from envbuild.rattler import cache_stamps
from envbuild.rattler import records as records_mod
from envbuild.rattler.protocol import InstallRequest, classify


def _client(auth: dict[str, dict[str, str]] | None) -> rattler.Client:
    """py-rattler's authenticated client, with the request's credentials (host -> {"kind",
    "vars"}) in its auth file."""
    if auth:
        entries: dict[str, Any] = {}
        for host, cred in auth.items():
            values = [os.environ.get(v, "") for v in cred["vars"].split(":")]
            if cred["kind"] == "BasicHTTP":
                entries[host] = {"BasicHTTP": {"username": values[0], "password": values[1]}}
            else:
                entries[host] = {"CondaToken": values[0]}
        tmp = tempfile.mkdtemp(prefix="envbuild-auth-")
        _CLEANUP.append(tmp)
        path = Path(tmp) / "credentials.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f)
        os.environ["RATTLER_AUTH_FILE"] = str(path)
    return rattler.Client.authenticated_client()


_CLEANUP: list[str] = []


def _cutoff(req: dict[str, Any]) -> datetime.datetime | None:
    """The request's ``exclude_newer`` (``YYYY-MM-DDTHH:MM:SSZ``) as an aware datetime. The
    solver judges a record by its upload (``indexed_timestamp``), else its build time; records
    with neither are kept (``timestamp_policy="allow-missing"``): nothing says they are new."""
    value = req.get("exclude_newer")
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


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
    gateway = rattler.Gateway(cache_dir=req.get("cache_dir"), client=_client(req.get("auth")))
    try:
        records = await rattler.solve(
            _channels(req["channels"]),
            req["specs"],
            gateway=gateway,
            platforms=[req["platform"], "noarch"],
            virtual_packages=_virtual_packages(req.get("virtual_packages")),
            channel_priority=rattler.ChannelPriority.Strict,
            constraints=req.get("constraints") or None,
            timeout=None,
            exclude_newer=_cutoff(req),
            timestamp_policy="allow-missing",
        )
    except Exception as e:
        e.names = await _names(req, gateway)  # type: ignore[attr-defined]
        raise
    return [_record_json(r) for r in records]


def _name(spec: str) -> str:
    name = rattler.MatchSpec(spec).name
    return name.normalized if name is not None else spec.split(" ")[0]


async def _try_solve(req: dict[str, Any], specs: list[str], gateway: rattler.Gateway) -> str | None:
    try:
        await rattler.solve(
            _channels(req["channels"]),
            specs,
            gateway=gateway,
            platforms=[req["platform"], "noarch"],
            virtual_packages=_virtual_packages(req.get("virtual_packages")),
            channel_priority=rattler.ChannelPriority.Strict,
            exclude_newer=_cutoff(req),
            timestamp_policy="allow-missing",
        )
    except Exception as e:
        return str(e)
    return None


async def _records(
    req: dict[str, Any], spec: str, gateway: rattler.Gateway, platforms: list[str]
) -> list[rattler.RepoDataRecord]:
    try:
        per_channel = await gateway.query(
            _channels(req["channels"]),
            platforms,  # type: ignore[arg-type]
            [spec],
            recursive=False,
        )
    except Exception:
        return []
    ms = rattler.MatchSpec(spec)
    return [r for chan in per_channel for r in chan if ms.matches(r)]


async def diagnose(req: dict[str, Any]) -> dict[str, Any]:
    """Find which specs fail alone, or which pairs conflict, and why (for messages).

    Output: {"single": [{spec, error, versions, other_platforms}], "pairs": [{a, b, error,
    b_needs_a, a_needs_b}]}; each "needs" list holds the distinct specs with which records
    matching one spec depend on the other's package.
    """
    gateway = rattler.Gateway(cache_dir=req.get("cache_dir"), client=_client(req.get("auth")))
    specs: list[str] = req["specs"]
    single = []
    for spec in specs:
        error = await _try_solve(req, [spec], gateway)
        if error is None:
            continue
        name = _name(spec)
        here = await _records(req, name, gateway, [req["platform"], "noarch"])
        elsewhere = []
        for other in req.get("other_platforms", []):
            if await _records(req, name, gateway, [other]):
                elsewhere.append(other)
        single.append(
            {
                "spec": spec,
                "error": error,
                "versions": sorted({str(r.version) for r in here}),
                "other_platforms": elsewhere,
            }
        )
    pairs = []
    if not single:
        for i, a in enumerate(specs):
            for b in specs[i + 1 :]:
                error = await _try_solve(req, [a, b], gateway)
                if error is None:
                    continue
                pairs.append(
                    {
                        "a": a,
                        "b": b,
                        "error": error,
                        "b_needs_a": await _needs(req, b, a, gateway),
                        "a_needs_b": await _needs(req, a, b, gateway),
                    }
                )
                if len(pairs) >= 5:
                    return {"single": single, "pairs": pairs}
    return {"single": single, "pairs": pairs}


async def _needs(req: dict[str, Any], spec: str, other: str, gateway: rattler.Gateway) -> list[str]:
    other_name = _name(other)
    found: set[str] = set()
    for r in await _records(req, spec, gateway, [req["platform"], "noarch"]):
        for dep in r.depends:
            if dep.split(" ")[0] == other_name:
                found.add(dep)
    return sorted(found)


async def solve_many(req: dict[str, Any]) -> list[list[dict[str, Any]] | dict[str, Any]]:
    """Solve several requests concurrently; each item is a record list or {"error": ...}."""

    async def one(r: dict[str, Any]) -> list[dict[str, Any]] | dict[str, Any]:
        try:
            return await solve(r)
        except Exception as e:
            return {"error": classify(e).to_json()}

    return list(await asyncio.gather(*(one(r) for r in req["requests"])))


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


def _discard(entry: Path) -> None:
    """Remove package cache ``entry`` under py-rattler's lock of it (as ``doit gc`` does):
    the next fetch extracts it again. Raises RuntimeError if another install holds it."""
    from envbuild.util.fs import remove_tree
    from envbuild.util.mutex import hold

    with hold(Path(f"{entry}.lock"), f"use of package cache entry {entry.name}", timeout=600):
        remove_tree(entry)


async def install(data: dict[str, Any]) -> int:
    """Install exactly the records of an :class:`InstallRequest` (``data``, its JSON) into its
    prefix; no solve. Returns the count.

    Each record's ``url`` is where it is fetched from (mirror applied); ``canonical_url`` and
    ``canonical_channel`` are what the installed record says. Every ``file://`` archive is
    checked against the locked sha256 first (py-rattler checks http downloads itself); the
    records are then completed from each package's own index.json and ``conda-meta/history``
    written with the request's specs. Raises records.ArchiveMismatch naming each bad archive.
    """
    from concurrent.futures import ThreadPoolExecutor

    from rattler.package_cache import PackageCache, PackageCacheLayer, ValidationMode

    req = InstallRequest.from_json(data)
    locked = list(req.records)
    background = ThreadPoolExecutor(1)  # the archives are hashed while the stamps are checked
    hashing = background.submit(records_mod.verify_archives, locked)
    records = [_repodata_record(j) for j in locked]
    # "auto": py-rattler reflinks where the filesystem can, else hard-links, as conda and pixi
    # do; "copy" never shares a file with the cache. Either way an entry altered through a
    # hard link (an environment file edited in place) fails its stamp, so it is discarded
    # and extracted again (below): it is never linked again. A reflink is only tried where
    # the parent found the filesystem supports it (a failed attempt per file costs more than
    # the whole link on ext4).
    links = "true" if req.link_mode == "auto" else "false"
    reflinks = "true" if req.reflink else "false"
    config, _ = rattler.Config.from_toml_with_unused_keys(
        f"allow-hard-links = {links}\nallow-ref-links = {reflinks}\n"
    )
    # Every entry this install reuses matches the stamp taken when it was extracted from the
    # locked archive (:mod:`envbuild.rattler.cache_stamps`); every entry it extracts is
    # stamped afterwards.
    cache_dir = Path(req.cache_dir)
    entries = [cache_stamps.entry_dir(cache_dir, j["fn"]) for j in locked]
    # An entry not stamped as extracted from the locked archive may hold other bytes under
    # the same file name (a channel that rebuilt a package, a fetch that failed after
    # py-rattler recorded the new sha256): it is discarded, so that it is extracted again
    # from the archive checked above. What stays is intact: fast validation. An entry
    # another install sharing this cache extracted a moment ago is not stamped until that
    # install is done: discarding happens only under the cache's write lock, which waits
    # for every install in progress (each holds the read lock until it has stamped).
    uses = cache_stamps.users(cache_dir)
    if any(
        e.is_dir() and not cache_stamps.intact(e, j["sha256"])
        for j, e in zip(locked, entries, strict=True)
    ):
        with uses.write_lock():
            for j, entry in zip(locked, entries, strict=True):
                if entry.is_dir() and not cache_stamps.intact(entry, j["sha256"]):
                    _discard(entry)
    with uses.read_lock():
        stamped = {e for e in entries if e.is_dir()}
        sizes = hashing.result()  # raises ArchiveMismatch before anything is installed
        background.shutdown()
        layer = PackageCacheLayer(req.cache_dir).with_validation_mode(ValidationMode.fast())
        prefix = Path(req.prefix)
        await rattler.install(
            records,
            prefix,
            package_cache=PackageCache.from_layers([layer]),
            config=config,
            platform=rattler.Subdir(req.platform) if req.platform else None,
            show_progress=req.show_progress,  # py-rattler's bars, on a terminal
            execute_link_scripts=False,
            client=_client(req.auth),
        )
        for j, entry in zip(locked, entries, strict=True):
            if entry not in stamped:  # extracted just now, from the archive checked above
                cache_stamps.stamp(entry, j["sha256"])
    records_mod.finalize_records(prefix, locked, sizes, list(req.specs))
    records_mod.write_history(prefix, locked, list(req.specs))
    return len(records)


async def index(req: dict[str, Any]) -> str:
    """Write repodata.json for every subdir of the local channel ``req["channel_dir"]``."""
    await index_fs(Path(req["channel_dir"]), write_zst=False, write_shards=False, force=True)
    return req["channel_dir"]


OPS = {
    "solve": solve,
    "solve_many": solve_many,
    "diagnose": diagnose,
    "install": install,
    "index": index,
}


def _write(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def main(argv: list[str]) -> None:
    if not argv:  # started ahead (py-rattler imported meanwhile): the operation on stdin
        line = sys.stdin.readline()
        if not line.strip():
            os._exit(0)
        argv = json.loads(line)
    op, req_path, res_path = argv
    req = json.loads(Path(req_path).read_text())
    try:
        value = asyncio.run(OPS[op](req))
        payload: dict[str, Any] = {"ok": value}
    except Exception as e:
        payload = {"error": {**classify(e).to_json(), "traceback": traceback.format_exc()}}
    _write(Path(res_path), payload)
    for tmp in _CLEANUP:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
