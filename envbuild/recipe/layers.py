"""Layered recipes: ``extends: base`` (or a list) merges parent recipes into a child.

Rules (the child wins; later parents win over earlier ones):

* channels: the child's own, then the parents' not already listed (strict priority order),
  then any channel a spec names (``bioconda::samtools``) that is not listed;
* platforms, pack, docker, jupyter: the child's if it sets them, else the first parent's;
* exclude-newer: the child's, else the first parent's that sets one;
* dependencies and pypi-dependencies: merged by package name. Within one recipe, several specs
  for one package all apply (``python >=3.10`` and ``python <3.13``, as in conda); a later
  layer's specs for a package replace an earlier layer's at their place. Each remembers the
  recipe file that set it, for error messages;
* virtual_packages and variables: merged by name; smoke imports and commands: ordered union.

Parents are looked up as ``<name>.yml`` beside the child. A missing parent or a cycle is a
RecipeError naming the chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from envbuild.errors import RecipeError
from envbuild.recipe.io import read_document
from envbuild.recipe.model import NAME_RE, Recipe, Smoke, parse_document, pypi_name, spec_name
from envbuild.recipe.validate import display
from envbuild.util.schema import did_you_mean

DEFAULT_CHANNELS = ("conda-forge",)


def _union(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for g in groups for x in g))


def _by_name(
    layers: tuple[Recipe, ...],
    own: Recipe,
    specs_of: Callable[[Recipe], tuple[str, ...]],
    name_of: Callable[[str], str],
) -> dict[str, tuple[tuple[str, ...], str]]:
    """name -> (every spec of the last layer that names it, recipe file that set them)."""
    out: dict[str, tuple[tuple[str, ...], str]] = {}
    for layer in layers:
        origin = dict(layer.origins)
        mine: dict[str, list[str]] = {}
        for spec in specs_of(layer):
            mine.setdefault(name_of(spec), []).append(spec)
        for n, specs in mine.items():
            where = display(own.path) if layer is own else origin.get(n, display(layer.path))
            out[n] = (tuple(dict.fromkeys(specs)), where)
    return out


def merge(
    own: Recipe, parents: tuple[Recipe, ...], keys: set[str], default_platforms: tuple[str, ...]
) -> Recipe:
    """Merge ``own`` (the child as parsed; ``keys`` are the keys its file sets) over
    ``parents`` (already merged themselves). Pure."""
    layers = (*parents, own)
    deps = _by_name(layers, own, lambda r: r.dependencies, spec_name)
    pypi = _by_name(layers, own, lambda r: r.pypi_dependencies, pypi_name)
    first = parents[0] if parents else None
    platforms = own.platforms or (first.platforms if first else default_platforms)
    dependencies = tuple(s for specs, _ in deps.values() for s in specs)
    listed = _union(own.channels, *(p.channels for p in parents)) or DEFAULT_CHANNELS
    # a channel named in a spec (conda-forge::pandas) is searched too, after the listed ones
    named = tuple(s.rpartition("::")[0] for s in dependencies if "::" in s)
    return replace(
        own,
        channels=_union(listed, named),
        platforms=platforms,
        dependencies=dependencies,
        pypi_dependencies=tuple(s for specs, _ in pypi.values() for s in specs),
        origins=tuple((n, o) for n, (_, o) in {**deps, **pypi}.items()),
        sources=tuple(dict.fromkeys((own.path, *(f for p in parents for f in p.sources)))),
        virtual_packages=tuple(
            {k: v for p in (*parents, own) for k, v in p.virtual_packages}.items()
        ),
        smoke=Smoke(
            imports=_union(*(p.smoke.imports for p in parents), own.smoke.imports),
            commands=_union(*(p.smoke.commands for p in parents), own.smoke.commands),
        ),
        variables=tuple({k: v for p in (*parents, own) for k, v in p.variables}.items()),
        exclude_newer=own.exclude_newer
        or next((p.exclude_newer for p in parents if p.exclude_newer), ""),
        pack=own.pack if "pack" in keys or not first else first.pack,
        docker=own.docker if "docker" in keys or not first else first.docker,
        jupyter=own.jupyter if "jupyter" in keys or not first else first.jupyter,
    )


def _check_kernel(recipe: Recipe) -> Recipe:
    """A recipe asking for a Jupyter kernel must install ipykernel (conda or PyPI)."""
    if recipe.jupyter.kernel:
        names = {spec_name(s) for s in recipe.dependencies}
        names |= {pypi_name(r) for r in recipe.pypi_dependencies}
        if "ipykernel" not in names:
            msg = (
                f"{display(recipe.path)}: jupyter.kernel: a kernel needs ipykernel in the "
                "environment; add 'ipykernel' to dependencies"
            )
            raise RecipeError(msg)
    return recipe


def load_layered(
    path: Path,
    stack: tuple[Path, ...] = (),
    default_platforms: tuple[str, ...] = ("linux-64",),
    loaded: dict[Path, Recipe] | None = None,
) -> Recipe:
    """Load the recipe at ``path`` with its parents merged in (recursively); recipes that
    name no platforms get ``default_platforms``. Each file is loaded once per call
    (``loaded``: resolved path -> merged recipe), so a diamond of ``extends`` costs time
    linear in its files, not exponential in its depth."""
    real = path.resolve()
    if real in stack:
        chain = " -> ".join(p.stem for p in (*stack, real))
        msg = f"{display(path)}: extends: cycle of recipes: {chain}; remove one 'extends'"
        raise RecipeError(msg)
    loaded = {} if loaded is None else loaded
    if real in loaded:
        return loaded[real]
    data = read_document(path)
    parents: list[Recipe] = []
    names = data.get("extends", []) if isinstance(data, dict) else []
    names = [names] if isinstance(names, str) else names
    if isinstance(names, list):
        for i, name in enumerate(names):
            if not isinstance(name, str) or not NAME_RE.match(name):
                continue  # parse_document reports the bad value
            parent = path.parent / f"{name}.yml"
            if not parent.exists():
                known = sorted(p.stem for p in path.parent.glob("*.yml"))
                msg = (
                    f"{display(path)}: extends[{i}]: no recipe '{name}' "
                    f"({display(parent)}){did_you_mean(name, known)}"
                )
                raise RecipeError(msg)
            parents.append(load_layered(parent, (*stack, real), default_platforms, loaded))
    own, keys = parse_document(data, path, has_parents=bool(parents))
    loaded[real] = _check_kernel(merge(own, tuple(parents), keys, default_platforms))
    return loaded[real]


__all__ = ["DEFAULT_CHANNELS", "load_layered", "merge"]
