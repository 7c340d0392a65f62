"""The lockfile format: conda-lock's v1 lockfile read and written with conda-lock's own
parser, models and writer; per-platform ``@EXPLICIT`` files rendered with conda-lock's renderer;
install records taken from it.

Schema: ``conda_lock/lockfile/v1/models.py`` in https://github.com/conda/conda-lock. Writes go
through a staged file, so a lockfile is always whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envbuild.errors import LockError
from envbuild.fs import atomic_write, clean_temporaries, staged_file
from envbuild.project import Project
from envbuild.validate import display

if TYPE_CHECKING:  # conda-lock (and pydantic) cost ~0.5 s to import: only when writing
    from conda_lock.lockfile.v2prelim.models import Lockfile

FINGERPRINT_KEY = "envbuild_fingerprint"


def write_lockfile(lockfile: Lockfile, path: Path) -> None:
    """Write ``lockfile`` to ``path`` with conda-lock's writer, atomically."""
    from conda_lock.lockfile import write_conda_lock_file

    clean_temporaries(path)  # of a run that was killed
    with staged_file(path) as tmp:
        write_conda_lock_file(lockfile, tmp, metadata_choices=())
        atomic_write(tmp, tmp.read_text().replace(tmp.name, path.name))


def explicit_path(project: Project, name: str, platform: str) -> Path:
    return project.path("locks") / f"{name}-{platform}.explicit.txt"


def write_explicit(lockfile: Lockfile, project: Project, name: str) -> list[Path]:
    """Render ``@EXPLICIT`` spec files (one URL#md5 per line, for ``conda create --file``)
    with conda-lock's renderer, one per platform. Returns their paths."""
    from conda_lock.conda_lock import render_lockfile_for_platform

    paths = []
    for platform in lockfile.metadata.platforms:
        lines = render_lockfile_for_platform(
            lockfile=lockfile.model_copy(deep=True),
            include_dev_dependencies=False,
            extras=None,
            kind="explicit",
            platform=platform,
            suppress_warning_for_pip_and_explicit=True,
        )
        path = explicit_path(project, name, platform)
        atomic_write(path, "\n".join(lines) + "\n")
        paths.append(path)
    return paths


def read_lockfile(path: Path) -> Lockfile:
    """Parse ``path`` with conda-lock's parser. Raises LockError if missing or invalid."""
    from conda_lock.lockfile import parse_conda_lock_file

    try:
        return parse_conda_lock_file(path)
    except FileNotFoundError:
        msg = f"{display(path)}: no lockfile; run `doit lock` first"
        raise LockError(msg) from None
    except Exception as e:
        raise LockError(_invalid(path, f"{type(e).__name__}: {e}")) from None


def _invalid(path: Path, problem: str) -> str:
    return (
        f"{display(path)}: not a valid conda-lock file ({problem.strip()[:600]}); restore it "
        f"from version control (`git checkout -- {display(path)}`) or delete it and run "
        "`doit lock` to solve again"
    )


@dataclass(frozen=True, slots=True)
class LockedPackages:
    """A lockfile as the installer needs it, read without conda-lock's models."""

    platforms: tuple[str, ...]
    fingerprint: str | None
    packages: tuple[dict[str, Any], ...]  # the ``package`` entries as written


_REQUIRED = {"name": str, "version": str, "manager": str, "platform": str, "url": str}


def _load_yaml(path: Path) -> Any:
    """The YAML document in ``path``, read with PyYAML's C loader where it has one."""
    import yaml

    return yaml.load(path.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def read_packages(path: Path) -> LockedPackages:
    """Read lockfile ``path`` (conda-lock v1) with PyYAML's C loader, checking the keys the
    installer uses. Raises LockError (missing, invalid YAML, wrong shape) with a fix."""
    import yaml

    try:
        doc = _load_yaml(path)
    except FileNotFoundError:
        msg = f"{display(path)}: no lockfile; run `doit lock` first"
        raise LockError(msg) from None
    except (OSError, yaml.YAMLError) as e:
        raise LockError(_invalid(path, f"{type(e).__name__}: {e}")) from None
    try:
        if doc["version"] != 1:
            raise LockError(_invalid(path, f"version {doc['version']!r}, expected 1"))
        meta = doc["metadata"]
        platforms = tuple(str(p) for p in meta["platforms"])
        packages = tuple(doc["package"])
        for i, pkg in enumerate(packages):
            for key, kind in _REQUIRED.items():
                if not isinstance(pkg.get(key), kind):
                    raise LockError(
                        _invalid(path, f"package[{i}].{key}: missing or not a {kind.__name__}")
                    )
            hashes = pkg.get("hash") or {}
            if pkg["manager"] == "conda" and not isinstance(hashes.get("md5"), str):
                raise LockError(_invalid(path, f"package[{i}].hash.md5: missing or not a string"))
            if not isinstance(hashes.get("sha256"), str):
                raise LockError(
                    _invalid(path, f"package[{i}].hash.sha256: missing or not a string")
                )
    except (KeyError, TypeError, AttributeError) as e:
        raise LockError(_invalid(path, f"missing or malformed {e}")) from None
    fingerprint = (meta.get("custom_metadata") or {}).get(FINGERPRINT_KEY)
    return LockedPackages(platforms, fingerprint, packages)


def locked_fingerprint(path: Path) -> str | None:
    """The fingerprint recorded in lockfile ``path``, or None if absent/unreadable. Read with
    a plain YAML parser (no models): up-to-date checks call it."""
    import yaml

    try:
        value = _load_yaml(path)["metadata"]["custom_metadata"][FINGERPRINT_KEY]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def install_records(
    lockfile: LockedPackages, platform: str, manager: str = "conda"
) -> list[dict[str, Any]]:
    """The locked packages of ``manager`` for ``platform``: for conda, worker install records
    (url + md5 + sha256 + depends, no solving); for pip, {name, version, url, sha256}."""
    out: list[dict[str, Any]] = []
    for p in lockfile.packages:
        if p["manager"] != manager or p["platform"] != platform:
            continue
        url, sha256 = p["url"], p["hash"]["sha256"]
        if manager == "pip":
            out.append({"name": p["name"], "version": p["version"], "url": url, "sha256": sha256})
            continue
        deps = p.get("dependencies") or {}
        out.append(
            {
                "name": p["name"],
                "version": p["version"],
                "build": p.get("build") or "",
                "subdir": url.rsplit("/", 2)[-2],
                "depends": [f"{k} {v}".strip() for k, v in deps.items()],
                "md5": p["hash"]["md5"],
                "sha256": sha256,
                "fn": url.rsplit("/", 1)[-1],
                "url": url,
                "channel": url.rsplit("/", 2)[0],
            }
        )
    if manager == "conda" and not out:
        msg = f"the lockfile has no packages for platform {platform}"
        raise LockError(msg)
    return out
