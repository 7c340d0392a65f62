"""``envbuild pull REF --prefix PATH``: put a published environment at PATH, checked, with the
previous one kept for rollback. Needs no project and no recipe, only envbuild.

``REF`` names an image (``HOST/NAMESPACE/NAME:current``, ``...@sha256:...``) published by
``doit publish``, or the environment artifact itself. The environment is the conda-pack
tarball attached to the image as an OCI referrer (:data:`envbuild.deliver.publish.ENV_ARTIFACT`);
the image's manifest pins which tarball (:mod:`envbuild.deliver.pin`), and with
``--verify-key`` a signed provenance must name both (:mod:`envbuild.deliver.attest_oci`).

Beside PATH lives ``.<name>.pulls/``: one directory per pulled artifact (named by 12 hex of
its digest) with a completion record ``<id>.json`` beside it. PATH itself is a symlink to the
current one, replaced in one ``rename``: a reader sees the old environment or the new, never
a mix. Steps: fetch the tarball into ``<id>.partial/`` checking its digest (nothing is
unpacked from a blob that does not match), unpack into ``<id>/`` (files, directories and links
inside the tree only, within the declared size: :mod:`envbuild.deliver.unpack`), relocate it
there by envbuild's own code from conda-pack's records (the tarball's ``conda-unpack`` never
runs), import the smoke modules the pinned manifest names, write the record,
switch PATH. A failure or kill -9 at any point leaves PATH as it was; the next pull removes
the leftovers. The previous environment stays (``--rollback`` switches back to it); older
ones are removed. A pull of what PATH already holds transfers one manifest and does nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from envbuild.deliver.pin import Pinned
from envbuild.deliver.pulls import check_pulls_dir, make_pulls_dir, pulls_dir
from envbuild.deliver.registry_http import DEADLINE
from envbuild.errors import EnvBuildError, RegistryError
from envbuild.records import Pulled
from envbuild.util import kill_points
from envbuild.util.fs import remove_tree, replace_symlink
from envbuild.util.redact import printable

log = logging.getLogger("envbuild")


def _record(prefix: Path, ident: str) -> Path:
    return pulls_dir(prefix) / f"{ident}.json"


def current(prefix: Path) -> Pulled | None:
    """The record of the environment ``prefix`` points at, or None (also if damaged)."""
    if not prefix.is_symlink():
        return None
    ident = os.readlink(prefix).rsplit("/", 1)[-1]
    return Pulled.peek(_record(prefix, ident))


def _check_target(prefix: Path) -> None:
    if (prefix.exists() or prefix.is_symlink()) and not (
        prefix.is_symlink() and os.readlink(prefix).startswith(pulls_dir(prefix).name + "/")
    ):
        msg = (
            f"{prefix}: exists and was not made by envbuild pull; choose another --prefix "
            "or move it away (envbuild never writes over it)"
        )
        raise EnvBuildError(msg)


def _find_environment(client: Any, ref: Any) -> Pinned:
    """What ``ref`` pins (:mod:`envbuild.deliver.pin`): an environment artifact named
    itself, or the tarball the image (for this machine, in an index) records."""
    from envbuild.deliver.descriptor import parse_json
    from envbuild.deliver.pin import digest_of, from_artifact, from_image
    from envbuild.util.mediatypes import ENV_ARTIFACT

    data, _, digest = client.get_manifest(ref)
    manifest = parse_json(data, str(ref))
    if manifest.get("artifactType") == ENV_ARTIFACT:
        return from_artifact(manifest, digest, str(ref))
    if "manifests" in manifest:  # an index: the image for this machine
        entries = manifest["manifests"] if isinstance(manifest["manifests"], list) else []
        image = for_this_machine([e for e in entries if isinstance(e, dict)], str(ref))
        if image is None:
            msg = f"{ref}: an image index with no linux/{_arch()} image; nothing to pull"
            raise RegistryError(msg)
        digest = digest_of(image.get("digest"), f"{ref}: index entry")
        data, _, _ = client.get_manifest(ref.with_target(digest))  # checked against it
        manifest = parse_json(data, f"{ref}: image {digest}")
    return from_image(client, ref, digest, manifest)


def _arch() -> str:
    import platform

    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def for_this_machine(
    entries: list[dict[str, Any]], what: str = "image index"
) -> dict[str, Any] | None:
    """The descriptor in an image index's ``manifests`` for linux on this architecture (a
    ``platform`` that is not an object is skipped). Raises RegistryError if entries for it
    name different digests: which one would be a guess."""
    found = [
        e
        for e in entries
        if isinstance(p := e.get("platform"), dict)
        and p.get("os") == "linux"
        and p.get("architecture") == _arch()
    ]
    if len({str(e.get("digest")) for e in found}) > 1:
        shown = ", ".join(printable(e.get("digest"), 80) for e in found[:4])
        msg = f"{what}: the image index lists several linux/{_arch()} images ({shown}); refused"
        raise RegistryError(msg)
    return found[0] if found else None


def _kept(prefix: Path, ident: str, artifact: str) -> Pulled | None:
    """The record of environment ``ident`` kept beside ``prefix``, if it is ``artifact``."""
    kept = Pulled.peek(_record(prefix, ident))
    if kept is None:
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
    reference: str,
    prefix: Path,
    insecure: bool = False,
    verify_key: Path | None = None,
    deadline: float = DEADLINE,
) -> Pulled:
    """Pull the environment ``reference`` names into ``prefix`` (see the module docstring;
    what is pinned and checked: :mod:`envbuild.deliver.pin`); with ``verify_key`` (a public
    key PEM file), only if the image's signed provenance names that image and tarball
    (:func:`envbuild.deliver.attest_oci.verify_pull`). Raises RegistryError (registry,
    digests, annotations, provenance) or EnvBuildError (``.<name>.pulls``, unpack,
    relocation, imports); ``prefix`` is then as it was. ``deadline``: seconds all of its
    registry requests may take (:func:`envbuild.deliver.registry_http.watchdog`)."""
    from filelock import FileLock

    from envbuild.deliver.registry import connect
    from envbuild.deliver.registry_http import Deadline, watchdog
    from envbuild.util.reference import parse_reference

    start = time.perf_counter()
    prefix = Path(os.path.abspath(prefix))
    ref = parse_reference(reference)
    _check_target(prefix)
    check_pulls_dir(prefix)
    until = Deadline.after(deadline)
    with watchdog(until, f"{ref}: pull"):
        client = connect(ref.host, insecure, until)
        pin = _find_environment(client, ref)
        if verify_key is not None:  # before anything is written or unpacked
            from envbuild.deliver.attest_oci import verify_pull

            signer = verify_pull(client, ref, pin.image, pin.blob, verify_key).keyid
            log.info("%s: provenance signed by key %s", ref, signer[:16])
    art_digest, imports = pin.artifact, pin.imports
    ident = art_digest.split(":")[1][:12]
    root = pulls_dir(prefix)
    make_pulls_dir(root)
    check_pulls_dir(prefix)  # made by another meanwhile?
    with FileLock(str(root / ".lock")):
        _check_target(prefix)
        check_pulls_dir(prefix)
        now = current(prefix)
        if now is not None and now.artifact == art_digest:
            return Pulled(
                str(ref), pin.image, art_digest, pin.blob, now.directory, imports,
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
        _check_room(root, pin, str(ref), prefix)
        try:
            staging.mkdir()
            with watchdog(until, f"{ref}: pull"):
                tarball = _fetch(client, ref, pin, staging)
            kill_points.reached("pull:fetched")
            _unpack_and_check(tarball, dest, pin, str(ref))
            kill_points.reached("pull:unpacked")
            record = Pulled(
                str(ref), pin.image, art_digest, pin.blob, str(dest), imports,
                client.transfer.received, round(time.perf_counter() - start, 3),
            )  # fmt: skip
            record.save(_record(prefix, ident))
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


def _check_room(root: Path, pin: Pinned, ref: str, prefix: Path) -> None:
    """Refuse, before fetching, an environment whose tarball and declared unpacked size
    (bytes, as its pinned manifest says) do not fit in the free space of ``root``'s disk: a
    declared size is a bound on a bomb only if it is not itself absurd (1 PB, say)."""
    import shutil

    need, free = pin.size + pin.unpacked_size, shutil.disk_usage(root).free
    if need > free:
        msg = (
            f"{ref}: needs {need} bytes ({pin.size} tarball + {pin.unpacked_size} unpacked, as "
            f"its manifest declares), but {root} has {free} bytes free; refused before fetching. "
            f"Free some space, or choose a --prefix on a larger disk\n{prefix} is unchanged"
        )
        raise EnvBuildError(msg)


_MAGIC = {b"\x28\xb5\x2f\xfd": "env.tar.zst", b"\x1f\x8b": "env.tar.gz"}


def _fetch(client: Any, ref: Any, pin: Pinned, staging: Path) -> Path:
    """Fetch the pinned tarball into ``staging`` (its digest and size checked as it comes),
    named by its format as its first bytes say (zstd or gzip; a file name from the registry
    is never used). Raises RegistryError, or EnvBuildError for neither format."""
    blob = staging / "env.blob"
    with blob.open("wb") as f:
        client.fetch_blob(ref.repository, pin.blob, f, pin.size)
    with blob.open("rb") as f:
        head = f.read(4)
    name = next((n for magic, n in _MAGIC.items() if head.startswith(magic)), "")
    if not name:
        msg = f"{ref}: the environment artifact is not a readable tarball (neither zstd nor gzip)"
        raise EnvBuildError(msg)
    return blob.rename(staging / name)


def _first_lines(text: str, keep: int = 12) -> str:
    """``text`` cut to ``keep`` lines (tar names every file it could not write)."""
    lines = text.splitlines()
    if len(lines) <= keep:
        return text
    return "\n".join([*lines[:keep], f"    ... ({len(lines) - keep} more lines)"])


def _unpack_and_check(tarball: Path, dest: Path, pin: Pinned, ref: str) -> None:
    """Unpack ``tarball`` into ``dest`` (:func:`envbuild.deliver.unpack.unpack`, bounded by
    the pinned unpacked size), relocate it there (:func:`envbuild.deliver.unpack.relocate`:
    conda-pack's records, none of its code run), import the pinned imports with its own
    interpreter: the only code from the pulled content that runs. Raises EnvBuildError
    naming the step."""
    import tarfile

    import zstandard

    from envbuild.deliver.unpack import relocate, unpack
    from envbuild.recipe.model import Smoke
    from envbuild.ship.smoke import failure_message, run_checks

    remove_tree(dest)
    try:
        unpack(tarball, dest, pin.unpacked_size, ref)
    except (zstandard.ZstdError, EOFError, tarfile.TarError) as e:  # BadGzipFile: OSError
        msg = f"{ref}: the environment artifact is not a readable tarball ({printable(e, 200)})"
        raise EnvBuildError(msg) from None
    except OSError as e:
        msg = f"{ref}: unpacking into {dest} failed: {e}"
        raise EnvBuildError(msg) from None
    relocate(dest, ref)
    results = run_checks(Smoke(imports=pin.imports), dest)
    if not all(r.ok for r in results):
        msg = f"{ref}: the pulled environment fails its imports\n" + failure_message(
            ref, dest, results
        )
        raise EnvBuildError(msg)


def rollback(prefix: Path) -> str:
    """Point ``prefix`` back at the other environment kept beside it. Returns its id."""
    prefix = Path(os.path.abspath(prefix))
    _check_target(prefix)
    check_pulls_dir(prefix)
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


def main(argv: list[str], usage: str | None = None) -> int:
    """``envbuild pull REF --prefix PATH [--insecure]`` / ``envbuild pull --rollback
    --prefix PATH``; returns the exit code. ``usage``: the usage line its errors show (the
    ``envbuild pull --help`` one, from the table of verbs), else argparse's."""
    parser = argparse.ArgumentParser(
        prog="envbuild pull", usage=usage, description=__doc__.split("\n\n")[0]
    )
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

        lines = scrub(str(e)).split("\n")  # each line escaped: no ESC sequence reaches the terminal
        print("envbuild pull: " + "\n".join(printable(ln, 2000) for ln in lines), file=sys.stderr)
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
