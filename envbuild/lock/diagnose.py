"""Conflict explanations a person can act on, on top of py-rattler's solver tree.

When a solve fails, the worker re-solves each recipe spec alone, then pairs of specs, and looks
up what the records of one spec require of the other's package. This module turns those
findings into lines that name the recipe file that set each spec (a parent recipe for inherited
specs), e.g.::

    recipes/ml.yml: `numpy <1.20` conflicts with `pandas 2.*` (every pandas matching
    `pandas 2.*` needs numpy >=1.22.4)

Covers: no such package (with a did-you-mean), no version matches, a missing virtual package
(e.g. ``__cuda``), a platform with no build, and two specs that exclude each other.
"""

from __future__ import annotations

import re
from typing import Any

from envbuild.project import did_you_mean
from envbuild.recipe.model import Recipe, spec_name

_VIRTUAL = re.compile(r"(__[a-z]+)[^\n,]*?(?:,|\s)+for which no candidates", re.IGNORECASE)
_VIRTUAL_ANY = re.compile(r"\b(__(?:cuda|glibc|osx|win|linux|unix|archspec))\b([^\n]*)")


def _single(recipe: Recipe, platform: str, item: dict[str, Any], names: tuple[str, ...]) -> str:
    spec = item["spec"]
    name = spec_name(spec)
    where = f"{recipe.origin(name)}: `{spec}`"
    chans = ", ".join(recipe.channels)
    virtual = _VIRTUAL_ANY.search(item["error"])
    if virtual:
        vp = virtual.group(1)
        return (
            f"{where} needs the virtual package {vp}{virtual.group(2).split(',')[0]}, which "
            f"{platform} does not provide here; if the target machines have it, declare it "
            f"in the recipe: virtual_packages: {{{vp}: '<version>'}}"
        )
    if not item["versions"]:
        if item["other_platforms"]:
            return (
                f"{where}: '{name}' has no build for {platform} on channel(s) {chans} "
                f"(it exists for {', '.join(item['other_platforms'])}); remove {platform} "
                "from platforms or the package from the recipe"
            )
        return (
            f"{where}: no package named '{name}' on channel(s) {chans} for {platform}"
            f"{did_you_mean(name, names)}"
        )
    shown = ", ".join(item["versions"][-8:])
    return (
        f"{where}: no version of '{name}' on channel(s) {chans} for {platform} matches "
        f"(available: {shown})"
    )


def _pair(recipe: Recipe, item: dict[str, Any]) -> str:
    a, b = item["a"], item["b"]
    na, nb = spec_name(a), spec_name(b)
    oa, ob = recipe.origin(na), recipe.origin(nb)
    head = f"{oa}: `{a}` conflicts with `{b}`" + (f" (from {ob})" if ob != oa else "")
    if item["b_needs_a"]:
        why = f"every {nb} matching `{b}` needs {' or '.join(item['b_needs_a'])}"
    elif item["a_needs_b"]:
        why = f"every {na} matching `{a}` needs {' or '.join(item['a_needs_b'])}"
    else:
        why = "through their dependencies; see the solver explanation below"
    return f"{head} ({why})"


def explain(
    recipe: Recipe, platform: str, findings: dict[str, Any], names: tuple[str, ...]
) -> list[str]:
    """Plain-language lines for the worker's ``diagnose`` findings (pure)."""
    lines = [_single(recipe, platform, s, names) for s in findings.get("single", [])]
    lines += [_pair(recipe, p) for p in findings.get("pairs", [])]
    return lines
