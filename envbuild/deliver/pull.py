"""``envbuild pull REF --prefix PATH``: put a published environment at PATH, checked, with the
previous one kept for rollback. Needs no project and no recipe, only envbuild.

``REF`` names an image (``HOST/NAMESPACE/NAME:current``, ``...@sha256:...``) published by
``doit publish``, or the environment artifact itself. The environment is the conda-pack
tarball attached to the image as an OCI referrer (:data:`envbuild.deliver.publish.ENV_ARTIFACT`).

Beside PATH lives ``.<name>.pulls/``: one directory per pulled artifact (named by 12 hex of
its digest) with a completion record ``<id>.json`` beside it. PATH itself is a symlink to the
current one, replaced in one ``rename``: a reader sees the old environment or the new, never
a mix. Steps: fetch the tarball into ``<id>.partial/`` checking its digest (nothing is
unpacked from a blob that does not match), unpack into ``<id>/``, relocate it there with its
own ``conda-unpack``, import the smoke modules recorded in the artifact, write the record,
switch PATH. A failure or kill -9 at any point leaves PATH as it was; the next pull removes
the leftovers. The previous environment stays (``--rollback`` switches back to it); older
ones are removed. A pull of what PATH already holds transfers one manifest and does nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from envbuild.errors import EnvBuildError, RegistryError
from envbuild.util.fs import atomic_write, remove_tree, replace_symlink
from envbuild.util.proc import kill_point

log = logging.getLogger("envbuild")

_UNTAR = ("tar", "-x", "-f", "-", "--no-same-owner", "--no-same-permissions")


@dataclass(frozen=True, slots=True)
class Pulled:
    """The record of one pull: what was asked for, the image and artifact digests, the
    tarball blob, the directory it went to (``pulls_dir/<id>``), imports checked, bytes
    transferred, seconds; ``changed`` is False when PATH already held it."""

    reference: str
    image: str
    artifact: str
    tarball: str
    directory: str
    imports: tuple[str, ...]
    bytes_received: int
    seconds: float
    changed: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def pulls_dir(prefix: Path) -> Path:
    """``<parent>/.<name>.pulls``: the pulled environments behind the symlink ``prefix``."""
    return prefix.parent / f".{prefix.name}.pulls"


def _record(prefix: Path, ident: str) -> Path:
    return pulls_dir(prefix) / f"{ident}.json"


def current(prefix: Path) -> dict[str, Any] | None:
    """The record of the environment ``prefix`` points at, or None."""
    if not prefix.is_symlink():
        return None
    ident = os.readlink(prefix).rsplit("/", 1)[-1]
    try:
        data = json.loads(_record(prefix, ident).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _check_target(prefix: Path) -> None:
    if (prefix.exists() or prefix.is_symlink()) and not (
        prefix.is_symlink() and os.readlink(prefix).startswith(pulls_dir(prefix).name + "/")
    ):
        msg = (
            f"{prefix}: exists and was not made by envbuild pull; choose another --prefix "
            "or move it away (envbuild never writes over it)"
        )
        raise EnvBuildError(msg)


def _find_environment(client: Any, ref: Any) -> tuple[str, dict[str, Any], str]:
    """(image digest, the environment artifact's manifest, its digest) for ``ref``."""
    from envbuild.deliver.publish import ENV_ARTIFACT

    data, _, digest = client.get_manifest(ref)
    manifest = json.loads(data)
    if manifest.get("artifactType") == ENV_ARTIFACT:
        return (manifest.get("subject") or {}).get("digest", ""), manifest, digest
    if "manifests" in manifest:  # an index: the image for this machine
        image = for_this_machine(manifest["manifests"])
        if image is None:
            msg = f"{ref}: an image index with no linux/{_arch()} image; nothing to pull"
            raise RegistryError(msg)
        digest = image["digest"]
    found, _ = client.referrers(ref.repository, digest)
    envs = [d for d in found if d.get("artifactType") == ENV_ARTIFACT]
    if not envs:
        fixed = _layer_prefix(client, ref, digest)
        where = (
            f"; its image holds the environment as a layer fixed at {fixed}, which cannot be "
            "moved to another path (run the image: docker run / apptainer build docker://...)"
            if fixed
            else ""
        )
        msg = (
            f"{ref}: no environment in it: no envbuild environment artifact refers to "
            f"image {digest}{where}; publish the relocatable tarball with "
            "`doit publish env=NAME`, or name the environment artifact itself"
        )
        raise RegistryError(msg)
    art_data, _, art_digest = client.get_manifest(ref.with_target(envs[-1]["digest"]))
    return digest, json.loads(art_data), art_digest


def _layer_prefix(client: Any, ref: Any, digest: str) -> str:
    """The prefix an envbuild image's environment layer is fixed at (label
    ``org.envbuild.prefix``), or "" for any other image."""
    import io

    try:
        manifest = json.loads(client.get_manifest(ref.with_target(digest))[0])
        config = manifest.get("config") or {}
        if config.get("size", 1 << 30) > 1 << 20:
            return ""
        buf = io.BytesIO()
        client.fetch_blob(ref.repository, config["digest"], buf, int(config["size"]))
        labels = (json.loads(buf.getvalue()).get("config") or {}).get("Labels") or {}
    except (RegistryError, ValueError, KeyError, AttributeError):
        return ""
    return str(labels.get("org.envbuild.prefix", ""))


def _arch() -> str:
    import platform

    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def for_this_machine(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The descriptor in an image index's ``manifests`` for linux on this architecture."""
    for e in entries:
        p = e.get("platform") or {}
        if p.get("os") == "linux" and p.get("architecture") == _arch():
            return e
    return None


def _untar(tarball: Path, dest: Path) -> None:
    from envbuild.ship.pack import open_tar_stream
    from envbuild.util import proc

    dest.mkdir(parents=True)
    with open_tar_stream(tarball) as stream, proc.feeding(_UNTAR, cwd=dest) as tar:
        shutil.copyfileobj(stream, tar, 1 << 20)


def _kept(prefix: Path, ident: str, artifact: str) -> Pulled | None:
    """The record of environment ``ident`` kept beside ``prefix``, if it is ``artifact``."""
    try:
        data = json.loads(_record(prefix, ident).read_text())
        data["imports"] = tuple(data["imports"])
        kept = Pulled(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return kept if kept.artifact == artifact and (pulls_dir(prefix) / ident).is_dir() else None


def _prune(prefix: Path, keep: set[str] | None = None) -> None:
    """Remove leftovers of killed pulls beside ``prefix`` (staging directories, environments
    without a record, records without an environment) and, with ``keep``, every pulled
    environment not in it."""
    root = pulls_dir(prefix)
    for p in root.iterdir():
        ident = p.name.removesuffix(".json")
        if p.name == ".lock":
            continue
        complete = (root / f"{ident}.json").is_file() and (root / ident).is_dir()
        if p.name.endswith(".partial") or not complete or (keep is not None and ident not in keep):
            remove_tree(p)


def pull(
    reference: str, prefix: Path, insecure: bool = False, verify_key: Path | None = None
) -> Pulled:
    """Pull the environment ``reference`` names into ``prefix`` (see the module docstring);
    with ``verify_key`` (a public key PEM file), only if its signed provenance checks
    (:func:`verify_provenance`). Raises RegistryError (registry, digest, provenance) or
    EnvBuildError (unpack, relocation, imports); ``prefix`` is then as it was."""
    from filelock import FileLock

    from envbuild.deliver.publish import ANN_IMPORTS
    from envbuild.deliver.reference import parse_reference
    from envbuild.deliver.registry import connect

    start = time.perf_counter()
    prefix = Path(os.path.abspath(prefix))
    ref = parse_reference(reference)
    _check_target(prefix)
    client = connect(ref.host, insecure)
    image, artifact, art_digest = _find_environment(client, ref)
    layers = artifact.get("layers") or []
    if len(layers) != 1:
        msg = f"{ref}: environment artifact {art_digest} has {len(layers)} layers, expected 1"
        raise RegistryError(msg)
    blob = layers[0]
    if verify_key is not None:  # before anything is written or unpacked
        verify_provenance(client, ref, image, str(blob.get("digest")), verify_key)
    ident = art_digest.split(":")[1][:12]
    imports = tuple(
        i for i in (artifact.get("annotations") or {}).get(ANN_IMPORTS, "").split(",") if i
    )
    root = pulls_dir(prefix)
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".lock")):
        _check_target(prefix)
        now = current(prefix)
        if now is not None and now.get("artifact") == art_digest:
            return Pulled(
                str(ref), image, art_digest, blob["digest"], now["directory"], imports,
                client.transfer.received, round(time.perf_counter() - start, 3), changed=False,
            )  # fmt: skip
        previous = os.readlink(prefix).rsplit("/", 1)[-1] if now is not None else ""
        _prune(prefix)  # leftovers of killed pulls
        kept = _kept(prefix, ident, art_digest)
        if kept is not None:  # the rollback target (pulled, checked): switch back to it
            replace_symlink(prefix, f"{root.name}/{ident}")
            os.utime(_record(prefix, ident))  # now the newest: --rollback goes back
            log.info("%s: back to %s (kept)", prefix, art_digest)
            spent = round(time.perf_counter() - start, 3)
            return replace(kept, bytes_received=client.transfer.received, seconds=spent)
        staging, dest = root / f"{ident}.partial", root / ident
        try:
            staging.mkdir()
            tarball = staging / blob.get("annotations", {}).get(
                "org.opencontainers.image.title", "env.tar.zst"
            ).replace("/", "_")
            with tarball.open("wb") as f:
                client.fetch_blob(ref.repository, blob["digest"], f, int(blob["size"]))
            kill_point("pull:fetched")
            _unpack_and_check(tarball, dest, imports, str(ref))
            kill_point("pull:unpacked")
            record = Pulled(
                str(ref), image, art_digest, blob["digest"], str(dest), imports,
                client.transfer.received, round(time.perf_counter() - start, 3),
            )  # fmt: skip
            atomic_write(_record(prefix, ident), record.to_json())
        except OSError as e:  # a full disk, most likely
            remove_tree(dest)
            msg = f"{ref}: writing beside {prefix} failed ({e}); {prefix} is unchanged"
            raise EnvBuildError(msg) from None
        except EnvBuildError as e:
            remove_tree(dest)
            raise type(e)(f"{_first_lines(str(e))}\n{prefix} is unchanged") from None
        except BaseException:
            remove_tree(dest)
            raise
        finally:
            remove_tree(staging)
            if not (prefix.exists() or prefix.is_symlink()) and not any(
                p.name != ".lock" for p in root.iterdir()
            ):
                remove_tree(root)  # a first pull that failed leaves nothing beside PATH
        replace_symlink(prefix, f"{root.name}/{ident}")
        _prune(prefix, {ident, previous})
    log.info("%s: now %s (%s)", prefix, ref, art_digest)
    return record


def verify_provenance(client: Any, ref: Any, image: str, tarball: str, key: Path) -> None:
    """``--verify-key``: refuse (RegistryError) unless image ``image`` carries a provenance
    signed by the public key in file ``key`` for that image and tarball blob ``tarball``
    (:func:`envbuild.deliver.attest_oci.verify_pull`)."""
    from envbuild.deliver.attest_oci import verify_pull

    info = verify_pull(client, ref, image, tarball, key)
    log.info("%s: provenance signed by key %s (build %s)", ref, info.keyid[:16], info.build_id)


def _first_lines(text: str, keep: int = 12) -> str:
    """``text`` cut to ``keep`` lines (tar names every file it could not write)."""
    lines = text.splitlines()
    if len(lines) <= keep:
        return text
    return "\n".join([*lines[:keep], f"    ... ({len(lines) - keep} more lines)"])


def _unpack_and_check(tarball: Path, dest: Path, imports: tuple[str, ...], ref: str) -> None:
    """Unpack ``tarball`` into ``dest``, relocate it there (its own ``conda-unpack``), import
    ``imports`` with its interpreter. Raises EnvBuildError naming the step."""
    import zstandard

    from envbuild.recipe.model import Smoke
    from envbuild.ship.smoke import activated_env, failure_message, run_checks
    from envbuild.util import proc

    remove_tree(dest)
    try:
        _untar(tarball, dest)
    except (EnvBuildError, OSError) as e:
        msg = f"{ref}: unpacking into {dest} failed: {e}"
        raise EnvBuildError(msg) from None
    except (zstandard.ZstdError, EOFError) as e:  # gzip's BadGzipFile is an OSError
        msg = f"{ref}: the environment artifact is not a readable tarball ({e})"
        raise EnvBuildError(msg) from None
    unpack = dest / "bin" / "conda-unpack"
    if not unpack.exists():
        msg = f"{ref}: the tarball holds no bin/conda-unpack; not a conda-pack environment"
        raise EnvBuildError(msg)
    try:
        proc.run([dest / "bin" / "python", unpack], env=activated_env(dest), timeout=600)
    except EnvBuildError as e:
        msg = f"{ref}: relocating the environment to {dest} failed:\n{e}"
        raise EnvBuildError(msg) from None
    results = run_checks(Smoke(imports=imports), dest)
    if not all(r.ok for r in results):
        msg = f"{ref}: the pulled environment fails its imports\n" + failure_message(
            ref, dest, results
        )
        raise EnvBuildError(msg)


def rollback(prefix: Path) -> str:
    """Point ``prefix`` back at the other environment kept beside it. Returns its id."""
    prefix = Path(os.path.abspath(prefix))
    _check_target(prefix)
    if not prefix.is_symlink():
        msg = f"{prefix}: nothing pulled here yet; nothing to roll back"
        raise EnvBuildError(msg)
    here = os.readlink(prefix).rsplit("/", 1)[-1]
    others = [
        p.name.removesuffix(".json")
        for p in sorted(pulls_dir(prefix).glob("*.json"), key=lambda p: p.stat().st_mtime)
        if p.name.removesuffix(".json") != here and (pulls_dir(prefix) / p.stem).is_dir()
    ]
    if not others:
        msg = f"{prefix}: no earlier pulled environment is kept; nothing to roll back to"
        raise EnvBuildError(msg)
    replace_symlink(prefix, f"{pulls_dir(prefix).name}/{others[-1]}")
    with contextlib.suppress(OSError):  # it is now the newest: the next rollback returns
        os.utime(_record(prefix, here))
    return others[-1]


def main(argv: list[str]) -> int:
    """``envbuild pull REF --prefix PATH [--insecure]`` / ``envbuild pull --rollback
    --prefix PATH``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="envbuild pull", description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", nargs="?", help="HOST/NAMESPACE/NAME[:TAG|@sha256:...]")
    parser.add_argument("--prefix", required=True, help="where the environment goes")
    parser.add_argument("--insecure", action="store_true", help="allow plain http / bad TLS")
    parser.add_argument("--rollback", action="store_true", help="switch back to the previous")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.add_argument("--verify-key", type=Path, metavar="PUB.pem",
                        help="refuse unless signed by this public key (PEM)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.rollback:
            ident = rollback(Path(args.prefix))
            print(f"{args.prefix}: rolled back to {ident}")
            return 0
        if not args.reference:
            parser.error("a reference is required (or --rollback)")
        done = pull(args.reference, Path(args.prefix), args.insecure, args.verify_key)
    except EnvBuildError as e:
        from envbuild.util.redact import scrub

        print(f"envbuild pull: {scrub(str(e))}", file=sys.stderr)
        return 1
    except OSError as e:  # PATH's directory not writable, say
        print(f"envbuild pull: {args.prefix}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(done.to_json())
    elif done.changed:
        print(f"{args.prefix}: {done.reference} ({done.artifact[:19]}), imports ok, "
              f"{done.bytes_received / 1e6:.1f} MB in {done.seconds:.1f} s")  # fmt: skip
    else:
        print(f"{args.prefix}: already {done.reference} ({done.artifact[:19]}); nothing to do")
    return 0
