"""Build a local ``file://`` conda channel from real artifacts, for machines without one.

Contents: the running CPython repackaged (:mod:`envbuild.offline.python`), the ``python_abi``
metapackage, and the requested PyPI packages with their whole dependency closure, downloaded as
wheels for this interpreter and platform (``pip download --only-binary=:all:``) and converted
with whl2conda (``--allow-impure`` for binary wheels), named with conda-forge's PyPI->conda
renames. Indexed with py-rattler's ``index_fs``. Converted packages are cached by wheel file
name, so a rebuild only converts what changed.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from envbuild import proc, rattler_client
from envbuild.errors import EnvBuildError
from envbuild.fs import remove_tree, staged_dir
from envbuild.offline.python import PythonSource, build_python_abi_package, build_python_package

log = logging.getLogger("envbuild")
SCHEMA = 3  # 2: python bundles its non-glibc libraries; 3: its -config script names no prefix


def inputs(requirements: tuple[str, ...]) -> dict[str, object]:
    """What the channel's content depends on (for up-to-date checks)."""
    import whl2conda

    src = PythonSource()
    return {
        "schema": SCHEMA,
        "python": src.version,
        "python_prefix": str(src.prefix),
        "requirements": list(requirements),
        "whl2conda": whl2conda.__version__,
    }


def download_wheels(requirements: tuple[str, ...], dest: Path) -> list[Path]:
    """Download wheels of ``requirements`` and their dependencies for this interpreter.

    Output: the wheel paths in ``dest`` that this resolution selected. Raises ProcessError.
    """
    dest.mkdir(parents=True, exist_ok=True)
    report = dest / "report.json"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    # resolve the closure for this interpreter without installing anything...
    proc.run(
        [
            *pip,
            "install",
            "--dry-run",
            "--ignore-installed",
            "--only-binary=:all:",
            "--quiet",
            "--report",
            report,
            *requirements,
        ],
        timeout=1800,
    )
    chosen = json.loads(report.read_text())["install"]
    pins = [f"{item['metadata']['name']}=={item['metadata']['version']}" for item in chosen]
    # ...then fetch exactly those wheels (pip skips files already in dest)
    proc.run(
        [*pip, "download", "--no-deps", "--only-binary=:all:", "--quiet", "--dest", dest, *pins],
        timeout=1800,
    )
    names = [item["download_info"]["url"].rsplit("/", 1)[-1] for item in chosen]
    return [dest / n for n in names]


def _conda_name(wheel: Path, renames: dict[str, str]) -> str:
    dist = wheel.name.split("-", 1)[0].lower().replace("_", "-")
    return renames.get(dist, dist)


def convert_wheel(wheel: Path, cache: Path, renames: dict[str, str]) -> Path:
    """Convert ``wheel`` to a .conda package in ``cache/<wheel stem>/`` (reused if present)."""
    out_dir = cache / wheel.stem
    done = sorted(out_dir.glob("*.conda")) if out_dir.is_dir() else []
    if done:
        return done[0]
    argv: list[str | Path] = [
        sys.executable, "-m", "whl2conda", "convert", wheel, "--allow-impure",
        "--name", _conda_name(wheel, renames), "--format", "conda",
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


def _dependency_names_fixed(pkg: Path, known: set[str], out_dir: Path) -> Path:
    """Copy ``pkg`` to ``out_dir``; if its ``depends`` spell one of the ``known`` package
    names of this channel with underscores (whl2conda keeps the requirement as the wheel's
    metadata wrote it: ``ipython_pygments_lexers``, ``stack_data``), rewrite them to the
    channel's dashed names (``ipython-pygments-lexers``) in a repacked archive."""
    from conda_package_handling import api as cph

    with tempfile.TemporaryDirectory() as tmp:
        cph.extract(str(pkg), tmp, components=["info"])
        index_json = Path(tmp) / "info" / "index.json"
        index = json.loads(index_json.read_text())
        fixed = []
        for dep in index.get("depends", []):
            name, sep, rest = dep.partition(" ")
            dashed = name.replace("_", "-")
            fixed.append(dashed + sep + rest if dashed in known and name not in known else dep)
        if fixed == index.get("depends", []):
            shutil.copy2(pkg, out_dir / pkg.name)
            return out_dir / pkg.name
        cph.extract(str(pkg), tmp)
        index["depends"] = fixed
        index_json.write_text(json.dumps(index, indent=2))
        files = [str(f.relative_to(tmp)) for f in Path(tmp).rglob("*") if not f.is_dir()]
        cph.create(tmp, files, pkg.name, out_folder=str(out_dir))
    return out_dir / pkg.name


def build_offline_channel(
    channel_dir: Path, cache_dir: Path, requirements: tuple[str, ...]
) -> Path:
    """Build the channel at ``channel_dir`` (replaced atomically when complete).

    Inputs: the channel root, a cache directory for wheels, converted packages and scratch
    space, PyPI requirement strings. Output: ``channel_dir``. Raises ProcessError when pip,
    whl2conda or patchelf fail, EnvBuildError for a non-CPython interpreter.
    """
    from whl2conda.api.stdrename import load_std_renames

    renames = load_std_renames(update=False)
    wheels = download_wheels(requirements, cache_dir / "wheels")
    with staged_dir(channel_dir) as tmp:
        (tmp / "noarch").mkdir()  # every channel has noarch, even an empty one
        build_python_package(tmp, cache_dir / "work")
        build_python_abi_package(tmp, cache_dir / "work")
        packages = [convert_wheel(w, cache_dir / "converted", renames) for w in wheels]
        indexes = [_index_of(pkg) for pkg in packages]
        known = {str(index["name"]) for index in indexes}
        for wheel, pkg, index in zip(wheels, packages, indexes, strict=True):
            subdir = tmp / str(index["subdir"])
            subdir.mkdir(exist_ok=True)
            _dependency_names_fixed(pkg, known, subdir)
            log.info("offline channel: %s -> %s/%s", wheel.name, subdir.name, pkg.name)
        rattler_client.call("index", {"channel_dir": str(tmp)})
        (tmp / "envbuild-channel.json").write_text(json.dumps(inputs(requirements), indent=2))
    remove_tree(cache_dir / "work")
    return channel_dir
