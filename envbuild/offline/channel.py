"""Build a local ``file://`` conda channel from real artifacts, for machines without one.

Contents: the running CPython repackaged (:mod:`envbuild.offline.python`), the ``python_abi``
metapackage, and the pinned PyPI packages (a whole dependency closure, pinned with hashes),
downloaded as wheels for this interpreter (``pip download --require-hashes``) and converted
with whl2conda (``--allow-impure`` for binary wheels), named with conda-forge's PyPI->conda
renames. Indexed with py-rattler's ``index_fs``. Converted packages are cached by wheel file
name, so a rebuild only converts what changed.

Same pins, same interpreter -> the same channel, byte for byte: the wheels are exactly those
of the committed pin file (:mod:`envbuild.offline.pins`, hashes checked), and every archive
and ``repodata.json`` is written without "now" in it (:mod:`envbuild.offline.archives`).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from envbuild.errors import ChannelError, ConfigError, EnvBuildError
from envbuild.lock.epoch import FALLBACK_EPOCH
from envbuild.offline.archives import Members, rewrite_conda, source_date_epoch, wheel_epoch
from envbuild.offline.pins import PinFile, check_interpreter, normalize, read_pins, update_command
from envbuild.offline.pycs import with_bytecode
from envbuild.offline.python import PythonSource, build_python_abi_package, build_python_package
from envbuild.offline.repairs import repaired
from envbuild.offline.requires import (
    Depends,
    Dist,
    Target,
    added_depends,
    solver_spelling,
    wheel_requires,
)
from envbuild.rattler import client as rattler_client
from envbuild.recipe.model import current_subdir
from envbuild.util import proc
from envbuild.util.fs import file_sha256, remove_tree, staged_dir

log = logging.getLogger("envbuild")
SCHEMA = 5  # 2: python bundles its non-glibc libraries; 3: its -config script names no prefix;
# 4: python and binary packages ship their bytecode (as conda-forge's do); 5: depends keep
# the marker-conditional requirements that hold for the channel (envbuild.offline.requires)


def inputs(pins: Path, requirements: tuple[str, ...] = ()) -> dict[str, object]:
    """What the channel's content depends on (for up-to-date checks): the pin file's bytes,
    the requirements it must match, the interpreter and whl2conda."""
    import hashlib

    import whl2conda

    src = PythonSource()
    try:
        pinned = hashlib.sha256(pins.read_bytes()).hexdigest()
    except OSError:
        pinned = "missing"  # the build reports it
    return {
        "schema": SCHEMA,
        "python": src.version,
        "python_prefix": str(src.prefix),
        "pins": pinned,
        "requirements": list(requirements),
        "whl2conda": whl2conda.__version__,
        "source_date_epoch": os.environ.get("SOURCE_DATE_EPOCH", ""),
    }


_PIP_FILE = re.compile(r"(?:Saved|File was already downloaded) (\S+\.whl)")


def download_wheels(pins: PinFile, dest: Path) -> list[Path]:
    """Download the pinned wheels into ``dest`` (kept there: a later build reuses them), each
    checked against the pin file's hashes, by pip (``--require-hashes``) and again here.

    Output: one wheel path per pin, in the pin file's order. Raises ChannelError naming the pin
    file and the fix when a wheel cannot be had with a pinned hash.
    """
    dest.mkdir(parents=True, exist_ok=True)
    argv: list[str | Path] = [
        sys.executable, "-m", "pip", "--disable-pip-version-check", "download", "--no-deps",
        "--only-binary=:all:", "--require-hashes", "--dest", dest, "-r", pins.path,
    ]  # fmt: skip
    try:
        out = proc.run(argv, timeout=1800).stdout
    except proc.ProcessError as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        # pip's report: the package line, its first expected hash, what it got (the other
        # allowed hashes, "Expected or ...", one per file of the release, are left out)
        hint = [
            ln
            for ln in lines
            if ("==" in ln or "Got" in ln or "DO NOT MATCH" in ln or "Expected sha256" in ln)
            and not ln.strip().startswith(("command failed", "Collecting", "Downloading"))
        ]
        shown = "\n".join((hint or lines)[-12:])
        msg = (
            f"{pins.path}: pip could not download the pinned wheels with their pinned hashes:\n"
            f"{shown}\nA wheel that no longer matches its hash was replaced upstream or "
            f"damaged on the way: check it, then update the pins on purpose with "
            f"`{update_command(pins.path)}`. The previous channel is left as it was."
        )
        raise ChannelError(msg) from None
    fetched = {Path(m).name for m in _PIP_FILE.findall(out)}
    wheels = []
    for pin in pins.pins:
        candidates = [
            w for w in sorted(dest.glob("*.whl"))
            if w.name in fetched and _wheel_id(w.name) == (pin.name, pin.version)
        ]  # fmt: skip
        wheel = next((w for w in candidates if file_sha256(w) in pin.hashes), None)
        if wheel is None:
            got = ", ".join(f"{w.name} sha256 {file_sha256(w)}" for w in candidates) or "no wheel"
            msg = (
                f"{pins.path}: {pin.name}=={pin.version}: {got} in {dest}, expected one of "
                f"sha256 {', '.join(pin.hashes)}. Delete {dest} and build again, or update the "
                f"pins on purpose with `{update_command(pins.path)}`."
            )
            raise ChannelError(msg)
        wheels.append(wheel)
    return wheels


def _wheel_id(filename: str) -> tuple[str, str]:
    """(normalized name, version) of a wheel file name (PEP 427)."""
    name, version = filename.split("-")[:2]
    return normalize(name), version


def _conda_name(wheel: Path, renames: dict[str, str]) -> str:
    dist = wheel.name.split("-", 1)[0].lower().replace("_", "-")
    return renames.get(dist, dist)


# whl2conda's command line, its .conda written at zstd level 1 instead of conda-package-
# handling's 19 (a module setting read at each write): the channel writes every package again
# at its own level (archives.ZSTD_LEVEL), so the channel's bytes do not depend on it, and
# level 19 was most of the conversion's time (minutes for a 250 MB wheel)
_WHL2CONDA = (
    "import sys; import conda_package_handling.conda_fmt as f; f.ZSTD_COMPRESS_LEVEL = 1; "
    "from whl2conda.cli.main import main; main(sys.argv[1:], prog='whl2conda')"
)


def convert_wheel(wheel: Path, cache: Path, name: str) -> Path:
    """Convert ``wheel`` to the .conda package ``name`` in ``cache/<wheel stem>/`` (reused if
    present)."""
    out_dir = cache / wheel.stem
    done = sorted(out_dir.glob("*.conda")) if out_dir.is_dir() else []
    if done:
        return done[0]
    argv: list[str | Path] = [
        sys.executable, "-c", _WHL2CONDA, "convert", wheel, "--allow-impure",
        "--name", name, "--format", "conda",
        "--no-update-stdrenames", "--quiet", "--out-dir",
    ]  # fmt: skip
    # whl2conda has been seen to deadlock (two threads in futex_wait) while writing a large
    # package: give each attempt a bound and try again rather than hang the demo
    for attempt in range(1, 4):
        try:
            with staged_dir(out_dir) as tmp:
                proc.run([*argv, tmp], timeout=600)
            break
        except proc.ProcessError as e:
            if "timed out" not in str(e) or attempt == 3:
                raise
            log.warning("whl2conda hung converting %s; trying again", wheel.name)
    return sorted(out_dir.glob("*.conda"))[0]


def _index_of(package: Path) -> dict[str, object]:
    from conda_package_streaming import package_streaming

    for tar, member in package_streaming.stream_conda_info(str(package)):
        if member.name == "info/index.json":
            f = tar.extractfile(member)
            assert f is not None
            return dict(json.load(f))
    msg = f"{package}: no info/index.json"
    raise EnvBuildError(msg)


def _placed(pkg: Path, known: frozenset[str], out_dir: Path, epoch: int, change: Depends) -> Path:
    """Write ``pkg`` into ``out_dir`` reproducibly (:func:`archives.rewrite_conda`, every
    member and the index timestamped ``epoch``), its ``depends`` without ``change.drop`` and
    followed by ``change.add`` (:mod:`envbuild.offline.requires`), each clause spelled as
    the solver reads it (:func:`~envbuild.offline.requires.solver_spelling`). If its
    ``depends`` spell one of the ``known`` package names of this channel with underscores
    (whl2conda keeps the requirement as the wheel's metadata wrote it:
    ``ipython_pygments_lexers``, ``stack_data``), they become the channel's dashed names
    (``ipython-pygments-lexers``)."""

    def dashed(dep: str) -> str:
        name, sep, rest = dep.partition(" ")
        dash = name.replace("_", "-")
        return dash + sep + rest if dash in known and name not in known else dep

    drop = {dashed(d) for d in change.drop}

    def edited(index: dict[str, Any]) -> dict[str, Any]:
        depends = [dashed(d) for d in [*index.get("depends", []), *change.add]]
        kept = [solver_spelling(d) for d in depends if d not in drop]
        return index | {"depends": list(dict.fromkeys(kept))}

    # a binary package ships its bytecode, as conda-forge's do; noarch: python ones leave it
    # to the installer
    def members(pkg: Members, info: Members) -> tuple[Members, Members]:
        pkg, info = repaired(pkg, info, PythonSource().short)
        return (pkg, info) if out_dir.name == "noarch" else with_bytecode(pkg, info)

    return rewrite_conda(pkg, out_dir / pkg.name, epoch, edited, members)


@dataclass(frozen=True, slots=True)
class _Convert:
    """Convert one wheel to the conda package ``name`` (in ``cache``). Picklable: it crosses
    to a worker process; it depends on its fields only."""

    wheel: Path
    name: str
    cache: Path

    def run(self) -> tuple[Path, str, str]:
        """(the .conda path, the name and subdir its index gives)."""
        pkg = convert_wheel(self.wheel, self.cache, self.name)
        index = _index_of(pkg)
        return pkg, str(index["name"]), str(index["subdir"])

    @property
    def size(self) -> int:
        return self.wheel.stat().st_size


@dataclass(frozen=True, slots=True)
class _Place:
    """Write the converted ``pkg`` into ``subdir`` reproducibly (:func:`_placed`)."""

    pkg: Path
    known: frozenset[str]
    subdir: Path
    epoch: int
    change: Depends

    def run(self) -> str:
        self.subdir.mkdir(exist_ok=True)
        placed = _placed(self.pkg, self.known, self.subdir, self.epoch, self.change)
        return f"{self.subdir.name}/{placed.name}"

    @property
    def size(self) -> int:
        return self.pkg.stat().st_size


@dataclass(frozen=True, slots=True)
class _PythonJob:
    """The interpreter's ``python`` and ``python_abi`` packages, written into ``channel``
    with ``work`` as scratch space, every member timestamped ``epoch``."""

    channel: Path
    work: Path
    epoch: int

    def run(self) -> str:
        made = (build_python_package(self.channel, self.work),
                build_python_abi_package(self.channel, self.work))  # fmt: skip
        for pkg in made:
            rewrite_conda(pkg, pkg, self.epoch, edit_members=with_bytecode)
        return ", ".join(f"{p.parent.name}/{p.name}" for p in made)

    @property
    def size(self) -> int:
        return 1 << 40  # the largest job (the standard library, compiled): first


class _Job(Protocol):
    """A unit of the channel's work: picklable, run in a worker process."""

    @property
    def size(self) -> int: ...  # bytes of input: the largest run first

    def run(self) -> Any: ...


def _run_all(jobs: Sequence[_Job]) -> list[Any]:
    """Run ``jobs`` on every core (a process pool of ``os.cpu_count()`` workers, started
    fresh: no inherited threads or locks), largest first so that no big one starts last and
    runs alone; results in the order of ``jobs``. Each job writes its own files, so the
    channel is the same bytes as a serial build's."""
    from concurrent.futures import ProcessPoolExecutor

    workers = min(os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        return [job.run() for job in jobs]
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].size)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {i: pool.submit(jobs[i].run) for i in order}
        try:
            return [futures[i].result() for i in range(len(jobs))]
        except BaseException:  # the first error (or Ctrl-C): start nothing more
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _repodata_fixed(channel: Path, epoch: int) -> None:
    """py-rattler's index stamps each entry with ``indexed_timestamp`` = now: set it to the
    channel's ``epoch`` (ms), so repodata.json is the same bytes on every rebuild."""
    for repodata in sorted(channel.glob("*/repodata.json")):
        data = json.loads(repodata.read_text())
        for key in ("packages", "packages.conda"):
            for entry in (data.get(key) or {}).values():
                if "indexed_timestamp" in entry:
                    entry["indexed_timestamp"] = epoch * 1000
        repodata.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        for derived in repodata.parent.glob("repodata*.json.*"):
            derived.unlink()  # compressed copies of the old text, if the index wrote any


def build_offline_channel(
    channel_dir: Path, cache_dir: Path, pin_file: Path, requirements: tuple[str, ...] = ()
) -> Path:
    """Build the channel at ``channel_dir`` from the wheels pinned in ``pin_file`` (replaced
    atomically when complete; on any error the previous channel stays).

    Inputs: the channel root, a cache directory for wheels, converted packages and scratch
    space, the pin file (:mod:`envbuild.offline.pins`) and, when given, the requirements it
    must have been made from (envbuild.toml ``[offline] requirements``). Every archive is
    written reproducibly (:mod:`envbuild.offline.archives`): converted wheels timestamped from
    the wheel (or ``SOURCE_DATE_EPOCH``), the interpreter's packages ``SOURCE_DATE_EPOCH`` or
    :data:`envbuild.lock.epoch.FALLBACK_EPOCH`. Output: ``channel_dir``. Raises ConfigError for a
    missing or stale pin file or another interpreter, ChannelError for a wheel without its
    pinned hash, ProcessError when whl2conda or patchelf fail, EnvBuildError for a
    non-CPython interpreter.
    """
    from whl2conda.api.stdrename import load_std_renames

    pins = read_pins(pin_file)
    check_interpreter(pins)
    if requirements and tuple(requirements) != pins.requirements:
        msg = (
            f"{pin_file}: pinned for requirements {' '.join(pins.requirements) or '(none)'}, "
            f"but envbuild.toml [offline] requirements are {' '.join(requirements)}: update "
            f"the pins on purpose with `{update_command(pin_file)} {' '.join(requirements)}`"
        )
        raise ConfigError(msg)
    renames = load_std_renames(update=False)
    wheels = download_wheels(pins, cache_dir / "wheels")
    names = {w: _conda_name(w, renames) for w in wheels}
    dists = {
        _wheel_id(w.name)[0]: Dist(_wheel_id(w.name)[1], names[w], wheel_requires(w))
        for w in wheels
    }
    target = Target(PythonSource().version, current_subdir())
    changes = added_depends(dists, target, pins.requirements, str(pin_file), renames)
    own_epoch = source_date_epoch(FALLBACK_EPOCH)
    with staged_dir(channel_dir) as tmp:
        (tmp / "noarch").mkdir()  # every channel has noarch, even an empty one
        work = cache_dir / f"work-{os.getpid()}"  # caches are shared by concurrent builds
        converts = [_Convert(w, names[w], cache_dir / "converted") for w in wheels]
        python, *converted = _run_all([_PythonJob(tmp, work, own_epoch), *converts])
        log.info("offline channel: python -> %s", python)
        known = frozenset(name for _, name, _ in converted)
        epochs = [source_date_epoch(wheel_epoch(w)) for w in wheels]
        places = [
            _Place(pkg, known, tmp / subdir, epoch, changes[_wheel_id(w.name)[0]])
            for w, (pkg, _, subdir), epoch in zip(wheels, converted, epochs, strict=True)
        ]
        for wheel, placed in zip(wheels, _run_all(places), strict=True):
            log.info("offline channel: %s -> %s", wheel.name, placed)
        newest = max([own_epoch, *epochs])
        rattler_client.call("index", {"channel_dir": str(tmp)})
        _repodata_fixed(tmp, newest)
        made_from = inputs(pin_file, requirements)
        (tmp / "envbuild-channel.json").write_text(json.dumps(made_from, indent=2))
    remove_tree(cache_dir / f"work-{os.getpid()}")
    return channel_dir
