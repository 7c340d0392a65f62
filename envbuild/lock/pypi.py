"""PyPI dependencies, the safe way: resolved with uv against each platform's locked Python,
pinned by URL and sha256 as ``manager: pip`` lockfile entries, installed after the conda layer
with hash checking and no dependency resolution.

Safety rules: a PyPI requirement that names a package the conda layer provides is refused at
lock time; packages the conda layer already provides are constraints for uv (pinned to the conda
version) and never emitted, so uv never installs a second copy; at build time a wheel that would
overwrite a file owned by a conda package fails the build, naming both packages.
Wheel selection follows the platform compatibility tags of PEP 425/600
(https://packaging.python.org/en/latest/specifications/platform-compatibility-tags/).
"""

from __future__ import annotations

import sys
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging import tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from envbuild.errors import BuildError, LockError
from envbuild.prefix.verify import conda_owned_files, dist_infos, dist_name, record_paths
from envbuild.recipe.model import Recipe, pypi_name
from envbuild.recipe.validate import display
from envbuild.util import proc, progress

UV = [sys.executable, "-m", "uv"]

_UV_PLATFORM = {
    "linux-64": ("x86_64-manylinux_{glibc}", "x86_64"),
    "linux-aarch64": ("aarch64-manylinux_{glibc}", "aarch64"),
    "osx-64": ("x86_64-apple-darwin", "x86_64"),
    "osx-arm64": ("aarch64-apple-darwin", "arm64"),
    "win-64": ("x86_64-pc-windows-msvc", "amd64"),
}


def conda_to_pypi() -> dict[str, str]:
    """conda package name -> PyPI distribution name (inverse of conda-forge's renames)."""
    from whl2conda.api.stdrename import load_std_renames

    return {
        conda: pypi
        for pypi, conda in load_std_renames(update=False).items()
        if not pypi.startswith("$")
    }


def uv_platform(platform: str, glibc: str) -> str:
    """uv's ``--python-platform`` for a conda subdir (LockError if PyPI locking is unsupported)."""
    if platform not in _UV_PLATFORM:
        msg = f"pypi-dependencies cannot be locked for platform {platform}"
        raise LockError(msg)
    return _UV_PLATFORM[platform][0].format(glibc=glibc.replace(".", "_"))


def platform_tags(platform: str, python: str, glibc: str) -> list[tags.Tag]:
    """Wheel tags a ``platform`` interpreter of version ``python`` accepts, best first."""
    major, minor = (int(x) for x in python.split(".")[:2])
    arch = _UV_PLATFORM[platform][1]
    if platform.startswith("linux"):
        gmaj, gmin = (int(x) for x in glibc.split(".")[:2])
        plats = [f"manylinux_{gmaj}_{m}_{arch}" for m in range(gmin, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        plats += [f"{legacy[m]}_{arch}" for m in legacy if m <= gmin] + [f"linux_{arch}"]
    elif platform.startswith("osx"):
        first = 11 if arch == "arm64" else 10
        plats = [
            f"macosx_{v}_0_{a}" for v in range(14, first - 1, -1) for a in (arch, "universal2")
        ]
        if arch == "x86_64":
            plats += [f"macosx_10_{m}_{a}" for m in range(15, 8, -1) for a in (arch, "universal2")]
    else:
        plats = ["win_amd64"]
    return [
        *tags.cpython_tags((major, minor), platforms=plats),
        *tags.compatible_tags((major, minor), platforms=plats),
    ]


def best_wheel(wheels: list[dict[str, Any]], accepted: list[tags.Tag]) -> dict[str, Any] | None:
    """The wheel whose best tag ranks highest in ``accepted``, or None."""
    rank = {t: i for i, t in enumerate(accepted)}
    best: tuple[int, dict[str, Any]] | None = None
    for w in wheels:
        name = w["url"].rsplit("/", 1)[-1]
        wheel_tags = parse_wheel_filename(name)[3]
        score = min((rank[t] for t in wheel_tags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, w)
    return best[1] if best else None


def check_no_conda_duplicates(recipe: Recipe, conda_names: Iterable[str]) -> dict[str, str]:
    """PyPI name -> conda package name for every conda package; LockError if a
    pypi-dependency names a distribution the conda layer already provides."""
    renames = conda_to_pypi()
    provided: dict[str, str] = {canonicalize_name(renames.get(n, n)): n for n in conda_names}
    for req in recipe.pypi_dependencies:
        name = pypi_name(req)
        if name in provided:
            msg = (
                f"{recipe.origin(name)}: pypi-dependencies: '{req}' duplicates the conda "
                f"package '{provided[name]}' (same distribution '{name}'); drop it from "
                "pypi-dependencies or from dependencies"
            )
            raise LockError(msg)
    return provided


def _constraints(conda: list[dict[str, Any]], provided: dict[str, str]) -> list[str]:
    versions = {r["name"]: r["version"] for r in conda}
    lines = []
    for pypi, conda_name in sorted(provided.items()):
        try:
            Version(versions[conda_name])
        except (InvalidVersion, KeyError):
            continue
        lines.append(f"{pypi}=={versions[conda_name]}")
    return lines


def resolve(
    recipe: Recipe, platform: str, conda: list[dict[str, Any]], glibc: str
) -> list[dict[str, Any]]:
    """Resolve ``recipe.pypi_dependencies`` for ``platform`` with uv against the locked Python
    among the ``conda`` records. Output: [{name, version, url, sha256}] (no conda duplicates).

    Raises LockError for a duplicate of a conda package, a missing python in the conda layer,
    a failed resolution (uv's explanation) or a package without a wheel for the platform.
    """
    python = next((r["version"] for r in conda if r["name"] == "python"), None)
    if python is None:
        msg = f"{display(recipe.path)}: pypi-dependencies need 'python' in dependencies"
        raise LockError(msg)
    provided = check_no_conda_duplicates(recipe, (r["name"] for r in conda))
    with tempfile.TemporaryDirectory(prefix="envbuild-uv-") as tmp:
        t = Path(tmp)
        (t / "requirements.in").write_text("\n".join(recipe.pypi_dependencies) + "\n")
        (t / "constraints.txt").write_text("\n".join(_constraints(conda, provided)) + "\n")
        argv = [
            *UV,
            "pip",
            "compile",
            t / "requirements.in",
            "-c",
            t / "constraints.txt",
            "--python-version",
            python,
            "--python-platform",
            uv_platform(platform, glibc),
            "--only-binary",
            ":all:",
            "--format",
            "pylock.toml",
            "-o",
            t / "pylock.toml",
            "--quiet",
            "--no-header",
        ]
        for name in sorted(provided):
            argv += ["--no-emit-package", name]
        result = proc.run(argv, check=False, timeout=600)
        if result.returncode != 0:
            msg = (
                f"{display(recipe.path)}: cannot lock pypi-dependencies for {platform} "
                f"(python {python}):\n"
                + "\n".join("    " + ln for ln in result.stderr.strip().splitlines())
            )
            raise LockError(msg)
        lock = tomllib.loads((t / "pylock.toml").read_text())
    accepted = platform_tags(platform, python, glibc)
    out = []
    for pkg in lock.get("packages", []):
        wheel = best_wheel(pkg.get("wheels", []), accepted)
        if wheel is None:
            msg = (
                f"{display(recipe.path)}: pypi-dependencies: no wheel of "
                f"{pkg['name']} {pkg['version']} for {platform}"
            )
            raise LockError(msg)
        out.append(
            {
                "name": canonicalize_name(pkg["name"]),
                "version": pkg["version"],
                "url": wheel["url"],
                "sha256": wheel["hashes"]["sha256"],
            }
        )
    return out


def top_level(path: str) -> str:
    """The import name a site-packages path provides ('' for metadata and other paths)."""
    parts = path.split("/")
    if "site-packages" not in parts:
        return ""
    rest = parts[parts.index("site-packages") + 1 :]
    if (
        not rest
        or rest[0].endswith((".dist-info", ".egg-info", ".pth"))
        or rest[0] in ("__pycache__", "README.txt")
    ):
        return ""
    return rest[0].removesuffix(".py") if len(rest) == 1 else rest[0]


def _installed_records(prefix: Path, names: set[str]) -> dict[str, list[str]]:
    """dist name -> prefix-relative paths from its RECORD, for the dists in ``names``."""
    return {
        dist_name(info): sorted(record_paths(prefix, info))
        for info in dist_infos(prefix)
        if dist_name(info) in names
    }


def install(prefix: Path, records: list[dict[str, Any]], recipe: Recipe) -> None:
    """Install the locked PyPI ``records`` ({name, version, url, sha256}) into ``prefix``:
    exact URLs, ``--require-hashes``, ``--no-deps``. Raises BuildError on failure or when a
    wheel overwrote a file owned by a conda package (naming both packages)."""
    if not records:
        return
    owned = conda_owned_files(prefix)
    with tempfile.TemporaryDirectory(prefix="envbuild-pip-") as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text(
            "".join(f"{r['name']} @ {r['url']} --hash=sha256:{r['sha256']}\n" for r in records)
        )
        result = proc.run(
            [
                *UV,
                "pip",
                "install",
                "--python",
                prefix / "bin" / "python",
                "--no-deps",
                "--require-hashes",
                "--no-config",
                "-r",
                reqs,
            ],
            check=False,
            timeout=1800,
            stream_stderr=progress.interactive(),  # uv draws its own progress on a terminal
        )
    if result.returncode != 0:
        msg = (
            f"{display(recipe.path)}: installing pypi-dependencies failed:\n"
            + proc.format_failure(result)
        )
        raise BuildError(msg)
    conda_top = {top_level(f): pkg for f, pkg in owned.items() if top_level(f)}
    for dist, files in _installed_records(prefix, {r["name"] for r in records}).items():
        clash = sorted(f for f in files if f in owned)
        shared = sorted({t for f in files if (t := top_level(f)) and t in conda_top} - {""})
        if shared and not clash:
            msg = (
                f"{display(recipe.path)}: PyPI package '{dist}' provides the import name "
                f"'{shared[0]}', which conda package '{conda_top[shared[0]]}' already "
                "provides; remove one of them from the recipe"
            )
            raise BuildError(msg)
        if clash:
            msg = (
                f"{display(recipe.path)}: PyPI package '{dist}' overwrites "
                f"{len(clash)} file(s) of conda package '{owned[clash[0]]}', e.g. "
                f"{clash[0]}; remove one of them from the recipe"
            )
            raise BuildError(msg)
