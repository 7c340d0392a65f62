"""The lockfile format: conda-lock's v1 lockfile read and written with conda-lock's own
parser, models and writer; per-platform ``@EXPLICIT`` files rendered with conda-lock's renderer;
install records taken from it.

Schema: ``conda_lock/lockfile/v1/models.py`` in https://github.com/conda/conda-lock. Writes go
through a staged file, so a lockfile is always whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conda_lock.lockfile import parse_conda_lock_file, write_conda_lock_file
from conda_lock.lockfile.v2prelim.models import Lockfile

from envbuild._fs import atomic_write, clean_temporaries, staged_file
from envbuild.errors import LockError
from envbuild.project import Project
from envbuild.recipe import _display

FINGERPRINT_KEY = "envbuild_fingerprint"


def write_lockfile(lockfile: Lockfile, path: Path) -> None:
    """Write ``lockfile`` to ``path`` with conda-lock's writer, atomically."""
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
    try:
        return parse_conda_lock_file(path)
    except FileNotFoundError:
        msg = f"{_display(path)}: no lockfile; run `doit lock` first"
        raise LockError(msg) from None
    except Exception as e:
        msg = (
            f"{_display(path)}: not a valid conda-lock file ({type(e).__name__}: "
            f"{str(e).strip()[:600]}); restore it from version control (`git checkout -- "
            f"{_display(path)}`) or delete it and run `doit lock` to solve again"
        )
        raise LockError(msg) from None


def locked_fingerprint(path: Path) -> str | None:
    """The fingerprint recorded in lockfile ``path``, or None if absent/unreadable. Read with
    a plain YAML parser (no models): up-to-date checks call it."""
    import yaml

    try:
        doc = yaml.load(path.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        value = doc["metadata"]["custom_metadata"][FINGERPRINT_KEY]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def install_records(
    lockfile: Lockfile, platform: str, manager: str = "conda"
) -> list[dict[str, Any]]:
    """The locked packages of ``manager`` for ``platform``: for conda, worker install records
    (url + md5 + sha256, no solving); for pip, {name, version, url, sha256}."""
    out: list[dict[str, Any]] = []
    for p in lockfile.package:
        if p.manager != manager or p.platform != platform:
            continue
        if manager == "pip":
            out.append(
                {"name": p.name, "version": p.version, "url": p.url, "sha256": p.hash.sha256}
            )
            continue
        out.append(
            {
                "name": p.name,
                "version": p.version,
                "build": p.build or "",
                "subdir": p.url.rsplit("/", 2)[-2],
                "depends": [f"{k} {v}".strip() for k, v in p.dependencies.items()],
                "md5": p.hash.md5,
                "sha256": p.hash.sha256,
                "fn": p.url.rsplit("/", 1)[-1],
                "url": p.url,
                "channel": p.url.rsplit("/", 2)[0],
            }
        )
    if manager == "conda" and not out:
        msg = f"the lockfile has no packages for platform {platform}"
        raise LockError(msg)
    return out
