"""A recipe's fingerprint: sha256 over the canonical JSON of everything that changes its solve.

Pure and light (py-rattler's match spec parser and ``packaging`` only, no conda-lock): the
build and the up-to-date checks compute it without importing the lock stage. Inputs: canonical
channel URLs in priority order (never mirrors), platforms, match specs and PyPI requirements
normalised and sorted, the virtual packages assumed per platform, and a schema version (doit's
``config_changed`` idea; conda-lock's content_hash has no such version and silently
mis-detects staleness across releases).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from envbuild.project import Project
from envbuild.recipe.model import Recipe

# Bump when the meaning of the fingerprint's inputs changes.
FINGERPRINT_SCHEMA = 3

# Virtual packages assumed per platform family, so that a lock does not depend on the machine
# that made it (https://docs.conda.io/projects/conda/en/latest/user-guide/tasks/manage-virtual.html).
_DEFAULT_VP = {
    "linux": {"__unix": "0", "__linux": "5.10", "__glibc": "2.28"},
    "osx": {"__unix": "0", "__osx": "11.0"},
    "win": {"__win": "0"},
}
_APPLIES = {
    "__glibc": ("linux",),
    "__linux": ("linux",),
    "__osx": ("osx",),
    "__win": ("win",),
    "__unix": ("linux", "osx"),
    "__cuda": ("linux", "win"),
    "__archspec": ("linux", "osx", "win"),
}
_ARCH = {"64": "x86_64", "aarch64": "aarch64", "arm64": "arm64", "ppc64le": "ppc64le"}


def virtual_packages(
    platform: str, overrides: tuple[tuple[str, str], ...] = ()
) -> tuple[tuple[str, str, str], ...]:
    """(name, version, build) of the virtual packages assumed for ``platform``, with the
    recipe's ``overrides`` (name, version) applied where they make sense for it."""
    family, _, arch = platform.partition("-")
    vps = {n: (v, "0") for n, v in _DEFAULT_VP.get(family, {}).items()}
    if arch in _ARCH:
        vps["__archspec"] = ("1", _ARCH[arch])
    for name, version in overrides:
        if family in _APPLIES.get(name, ()):
            vps[name] = ("1", version) if name == "__archspec" else (version, "0")
    return tuple((n, v, b) for n, (v, b) in sorted(vps.items()))


def solve_inputs(recipe: Recipe, project: Project) -> dict[str, Any]:
    """Everything that changes a solve, normalised: canonical channel URLs in priority order
    (never mirrors: a mirror is transport, so changing one relocks nothing); platforms, match
    specs and PyPI requirements sorted (order does not change a solve); virtual packages per
    platform."""
    import rattler
    from packaging.requirements import Requirement

    return (
        {
            "schema": FINGERPRINT_SCHEMA,
            "channels": [project.route(c).canonical for c in recipe.channels],
            "platforms": sorted(recipe.platforms),
            "dependencies": sorted(str(rattler.MatchSpec(s)) for s in recipe.dependencies),
            "pypi": sorted(str(Requirement(r)) for r in recipe.pypi_dependencies),
            "virtual_packages": {
                p: [list(v) for v in virtual_packages(p, recipe.virtual_packages)]
                for p in sorted(recipe.platforms)
            },
        }
        | ({"exclude_newer": cutoff} if (cutoff := effective_cutoff(recipe, project)) else {})
        | (
            # not a solve input, but the build, tarball and image carry them: a change rebuilds
            {"variables": dict(sorted(recipe.variables))} if recipe.variables else {}
        )
    )


def effective_cutoff(recipe: Recipe, project: Project) -> str:
    """The ``exclude-newer`` cutoff (UTC, ``YYYY-MM-DDTHH:MM:SSZ``) that applies to
    ``recipe``: its own, else the project's, else an empty string (no cutoff)."""
    return recipe.exclude_newer or project.exclude_newer


def fingerprint(recipe: Recipe, project: Project) -> str:
    """sha256 (64 hex chars) of the canonical JSON of :func:`solve_inputs`."""
    canonical = json.dumps(solve_inputs(recipe, project), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
