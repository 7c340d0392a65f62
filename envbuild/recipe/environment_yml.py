"""conda's ``environment.yml`` as a recipe, and back.

A conda environment file (https://docs.conda.io/projects/conda/en/latest/user-guide/tasks/manage-environments.html#create-env-file-manually)
is read as a recipe: its dependencies in conda's own spec forms (``numpy=1.26``,
``python>=3.10,<3.12``, ``conda-forge::pandas``, ``scipy=1.11=py311*``) are normalised by
py-rattler's lenient parser (conda's meaning: ``=1.26`` is ``1.26.*``, ``name=ver=build`` pins
the version exactly); the ``- pip:`` subsection becomes PyPI dependencies; ``nodefaults`` is
dropped from the channels; ``variables`` are set on activation; ``prefix`` is ignored. pip
options that cannot be honoured safely (editable installs, local paths, index options) are
errors naming the entry. :func:`render` writes a recipe back as an environment file.

Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from envbuild.recipe.validate import Checker, show
from envbuild.util.guard import guarded

NODEFAULTS = "nodefaults"
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
# values go into activation scripts, conda-meta/state and Dockerfile ENV lines: one line each
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME_VERSION_BUILD = re.compile(r"^(?:[\w.-]+::)?[\w.-]+=[^=\s<>!~]+=[^=\s]+$")
_INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index")


def conda_spec(spec: str) -> str:
    """``spec`` in a form py-rattler's strict parser (what the solver gets) accepts. conda's
    ``name=version=build`` form (``scipy=1.11=py311*``), which the strict parser refuses, is
    rewritten by its lenient, conda-compatible parser (``scipy ==1.11 py311*``); any other
    spec is returned unchanged (an invalid one is reported by the caller)."""
    import rattler

    if not _NAME_VERSION_BUILD.match(spec):
        return spec
    ms = guarded(rattler.MatchSpec, spec, strict=False)
    return spec if isinstance(ms, BaseException) else str(ms)  # the caller reports ``spec``


def split_dependencies(c: Checker, raw: Any) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(conda specs, (key path, pip requirement) pairs) of a ``dependencies`` list whose items
    are strings or a ``{pip: [...]}`` mapping (the recipe schema has checked that). Raises
    RecipeError naming a pip entry that cannot be honoured."""
    conda: list[str] = []
    pip: list[tuple[str, str]] = []
    for i, item in enumerate(raw):
        key = f"dependencies[{i}]"
        if isinstance(item, dict):
            entries = pip_requirements(c, item.get("pip", []), f"{key}.pip")
            pip += [(f"{key}.pip[{j}]", entry) for j, entry in enumerate(entries)]
        else:
            conda.append(conda_spec(item.strip()))
    return tuple(conda), tuple(pip)


def pip_requirements(c: Checker, raw: Any, key: str) -> list[str]:
    """The requirement strings of a ``- pip:`` list; editable installs, local paths and
    options are refused with the reason."""
    entries = [entry.strip() for entry in raw]
    for i, entry in enumerate(entries):
        where = f"{key}[{i}]"
        if entry.startswith(("-e ", "--editable")) or entry == "-e":
            raise c.fail(where, f"{show(entry)}: editable installs cannot be locked or "
                                "reproduced; build a wheel and publish it to an index")  # fmt: skip
        if entry.startswith(_INDEX_OPTIONS):
            raise c.fail(where, f"{show(entry)}: pip index options are not supported (there is "
                                "no index setting); PyPI is used")  # fmt: skip
        if entry.startswith("-"):
            raise c.fail(where, f"{show(entry)}: pip options are not supported here")
        remote = "://" in entry or "@" in entry  # a direct URL: PEP 508 validation says no
        if entry.startswith((".", "/", "~", "file:")) or (
            not remote and entry.endswith((".whl", ".tar.gz", ".zip"))
        ):
            raise c.fail(where, f"{show(entry)}: local paths cannot be locked; publish the "
                                "package to an index and name its version")  # fmt: skip
    return entries


def channels(names: tuple[str, ...]) -> tuple[str, ...]:
    """``channels`` without ``nodefaults`` (conda's marker to leave ``defaults`` out, which
    envbuild never adds)."""
    return tuple(n for n in names if n != NODEFAULTS)


def variables(c: Checker, raw: Any) -> tuple[tuple[str, str], ...]:
    """``variables: {NAME: value}`` as (name, value) pairs, values as strings."""
    out = []
    for name, value in raw.items():  # names and value types: the recipe schema
        bad = _CONTROL.search(str(value))
        if bad:
            raise c.fail(
                f"variables.{name}",
                f"{show(value)} contains the control character {bad.group()!r}; a value is one "
                "line of printable text",
            )
        out.append((name, str(value)))
    return tuple(out)


def render(
    name: str,
    channel_names: tuple[str, ...],
    dependencies: tuple[str, ...],
    pypi_dependencies: tuple[str, ...],
    env_variables: tuple[tuple[str, str], ...],
) -> str:
    """An ``environment.yml`` with the top-level specs (what ``conda env create -f`` reads).
    The recipe's channels only: no ``nodefaults``, which conda's new environment installer
    (conda 26 sends ``env create`` through ``create``) takes for a channel of that name and
    fails with UnavailableInvalidChannel."""
    import yaml

    deps: list[Any] = list(dependencies)
    if pypi_dependencies:
        if not any(d.split()[0].split("=")[0] == "pip" for d in deps):
            deps.append("pip")
        deps.append({"pip": list(pypi_dependencies)})
    doc: dict[str, Any] = {
        "name": name,
        "channels": list(channel_names),
        "dependencies": deps,
    }
    if env_variables:
        doc["variables"] = dict(env_variables)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
