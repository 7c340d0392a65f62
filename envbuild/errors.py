"""The one error hierarchy of envbuild: every expected failure is an EnvBuildError."""

from __future__ import annotations


class EnvBuildError(Exception):
    """Base class: a failure with a message a person can act on (no traceback shown)."""


class ConfigError(EnvBuildError):
    """The project configuration (envbuild.toml) is invalid."""


class RecipeError(EnvBuildError):
    """A recipe file is missing or invalid."""


class ChannelError(EnvBuildError):
    """A channel (or its mirror) cannot be reached or read."""


class LockError(EnvBuildError):
    """A solve failed or a lockfile is missing, stale or invalid."""


class BuildError(EnvBuildError):
    """Installing the locked packages into a prefix failed."""


class SmokeError(EnvBuildError):
    """A smoke check failed in a built environment."""


class PackError(EnvBuildError):
    """conda-pack failed, or the packed tarball did not prove out."""


class DockerError(EnvBuildError):
    """Rendering the Dockerfile or its build context failed."""


class ImageError(EnvBuildError):
    """Writing, loading or checking an OCI image (or reading its base) failed."""


class ProcessError(EnvBuildError):
    """A subprocess exited non-zero (see envbuild.util.proc)."""


class VerifyError(EnvBuildError):
    """An environment no longer matches its lockfile."""


class RegistryError(EnvBuildError):
    """An OCI registry could not be reached, refused a request, or served content that does
    not match its digest (see envbuild.deliver.registry)."""


class RecordError(EnvBuildError):
    """A record envbuild wrote (a build marker, a stage's state file, a journal) is damaged
    or of a version this envbuild does not read (see envbuild.records)."""


class ReaderLeft(BaseException):
    """stdout's reader went away mid-task (``envbuild status | head -1``): not a failure;
    ``envbuild`` ends quietly with 141, as a shell reports SIGPIPE. A BaseException so doit's
    action boundary, which makes any Exception a failed task, lets it through."""
