"""Doctor findings: the kinds, what to do about each, and the error for a path that cannot be
examined. Shared by :mod:`envbuild.prefix.doctor` and :mod:`envbuild.prefix.python`."""

from __future__ import annotations

from dataclasses import dataclass

from envbuild.errors import EnvBuildError

ADVICE = {
    "missing-file": "a file of this package is gone: adopt the environment and rebuild it",
    "malformed-record": "a conda-meta record cannot be read (truncated or edited): its "
    "package is unknown to conda; adopt and rebuild",
    "half-installed": "an install was interrupted (record without files): adopt and rebuild",
    "modified-file": "a file was changed after install: adopt and rebuild (or reinstall it)",
    "moved-prefix": "the prefix was moved without relocation: rebuild it where it is used, "
    "or use conda-pack + conda-unpack to move environments",
    "not-relocated": "conda-unpack leaves bin/python* unrewritten by design (one of them may "
    "be the running interpreter): these scripts still name the prefix the environment was "
    "packed from; rebuild the environment where it is used if you need them",
    "pip-installed": "installed by pip, unknown to conda: adopt records it as a PyPI dependency",
    "pip-overwrote": "pip replaced files conda owns: adopt and rebuild (PyPI packages are "
    "then installed without touching conda's files)",
    "pip-shadows": "pip installed a distribution conda also provides: keep only one (adopt "
    "keeps the conda package)",
    "duplicate-dist": "several metadata directories for one distribution (an interrupted "
    "upgrade): adopt and rebuild",
    "editable": "an editable install points at a source tree: it cannot be reproduced; "
    "publish the package or add it to the image another way",
    "path-outside": "sys.path reaches outside the prefix: imports depend on other files on "
    "this machine; remove the .pth entry or PYTHONPATH",
    "unsatisfied-depends": "an installed package's dependency does not hold (a partial "
    "update): adopt and rebuild from a full solve",
    "implied-pip": "conda adds `pip` to python's depends by itself (add_pip_as_python_"
    "dependency, on by default) and its solver ignores it while pip is absent, so this is no "
    "partial update; but `conda doctor` calls the environment inconsistent and conda's next "
    "install here adds pip: `conda install pip`, or set add_pip_as_python_dependency: false",
    "violated-constrains": "an installed package's constraint does not hold: adopt and "
    "rebuild from a full solve",
    "mixed-channels": "packages come from several channels: binaries built against "
    "different stacks; adopt (strict channel priority) and rebuild",
    "other-channel": "this package is not from the environment's first channel",
    "interpreter": "the interpreter cannot start or import its standard library: rebuild",
    "shared-library": "a shared library does not resolve inside the prefix: rebuild, "
    "and check LD_LIBRARY_PATH",
}


class DoctorError(EnvBuildError):
    """The path is not a conda prefix this machine can examine."""


# Kinds that describe rather than accuse: listed, but the doctor still exits 0 for them alone
# (a PyPI layer on top of conda packages is a supported way to build an environment).
NOTES = frozenset({"pip-installed", "not-relocated", "implied-pip"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding: ``kind`` (a key of :data:`ADVICE`), the ``package`` it concerns (or ""),
    a prefix-relative ``path`` (or ""), a human ``detail``, what to do (``advice``) and
    ``severity`` ("problem", or "note" for :data:`NOTES`)."""

    kind: str
    package: str
    path: str
    detail: str
    advice: str = ""
    severity: str = "problem"


def finding(kind: str, package: str, path: str, detail: str) -> Finding:
    severity = "note" if kind in NOTES else "problem"
    return Finding(kind, package, path, detail, ADVICE[kind], severity)


def problems(findings: list[Finding]) -> list[Finding]:
    """The findings that are problems (not notes): the doctor exits non-zero for these."""
    return [f for f in findings if f.severity == "problem"]
