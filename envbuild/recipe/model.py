"""Recipe model: ``recipes/<name>.yml`` parsed and validated into frozen dataclasses.

Pure: reads YAML (``yaml.safe_load`` only) and never runs processes. Every error names the file,
the key path and the bad value, with a did-you-mean for unknown keys. Keys, types and
forms are checked against ``envbuild/schemas/recipe.json`` first (:mod:`envbuild.util.schema`,
also what editors use); match specs, requirements, dates and names here, after. Example::

    name: ml
    channels: [conda-forge]          # strict priority, first wins
    platforms: [linux-64]            # default: this machine's subdir
    dependencies: ["python 3.11.*", "numpy >=1.26", scikit-learn]
    smoke:
      imports: [numpy, sklearn]
      commands: ["python -c 'import numpy'"]
    pack: {format: tar.zst}
    docker: {base_image: "debian:bookworm-slim", user: envbuild}

Match specs follow conda's MatchSpec syntax
(https://docs.conda.io/projects/conda/en/latest/user-guide/concepts/pkg-specs.html), parsed by
py-rattler.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envbuild.channels import utc_cutoff
from envbuild.recipe import environment_yml
from envbuild.recipe.validate import Checker, display, show
from envbuild.util.guard import guarded

# A recipe name is also the image repository envbuild/<name>: Docker's path component grammar
# (lower case; '.', '_', '__' or dashes only between letters and digits), at most 64
# characters (https://github.com/distribution/reference/blob/main/reference.go).
# \Z, not $: "$" also matches before a final newline.
NAME_RE = re.compile(r"^(?=.{1,64}\Z)[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
NAME_RULE = (
    "lower-case letters and digits, with '.', '_' or '-' only between them (it is also "
    "the image name envbuild/<name>)"
)
log = logging.getLogger("envbuild")


@dataclass(frozen=True, slots=True)
class Smoke:
    """Checks run in the built environment: modules to import, shell commands to run."""

    imports: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PackOptions:
    """conda-pack settings: archive ``format`` and compression ``level``."""

    format: str = "tar.zst"
    level: int = 3


@dataclass(frozen=True, slots=True)
class JupyterOptions:
    """``jupyter: {kernel: true, display_name: ...}``: register a Jupyter kernel for the
    environment (see :mod:`envbuild.ship.kernels`)."""

    kernel: bool = False
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class DockerOptions:
    """Dockerfile settings: base image, non-root user name/uid, install prefix in the image."""

    base_image: str = "debian:bookworm-slim"
    user: str = "envbuild"
    uid: int = 1000
    prefix: str = "/opt/env"


@dataclass(frozen=True, slots=True)
class Recipe:
    """A validated recipe. ``path`` is the file it came from."""

    name: str
    path: Path
    channels: tuple[str, ...]
    platforms: tuple[str, ...]
    dependencies: tuple[str, ...]
    smoke: Smoke = field(default_factory=Smoke)
    pack: PackOptions = field(default_factory=PackOptions)
    docker: DockerOptions = field(default_factory=DockerOptions)
    pypi_dependencies: tuple[str, ...] = ()
    virtual_packages: tuple[tuple[str, str], ...] = ()
    extends: tuple[str, ...] = ()
    exclude_newer: str = ""  # UTC cutoff YYYY-MM-DDTHH:MM:SSZ: solve only older packages
    variables: tuple[tuple[str, str], ...] = ()  # set on activation (environment.yml)
    jupyter: JupyterOptions = field(default_factory=JupyterOptions)
    origins: tuple[tuple[str, str], ...] = ()  # package name -> recipe file that set its spec
    sources: tuple[Path, ...] = ()  # this file and every file it extends, recursively

    def origin(self, package: str) -> str:
        """The recipe file (display path) whose spec for ``package`` this recipe uses."""
        return dict(self.origins).get(package, display(self.path))


def current_subdir() -> str:
    """This machine's conda subdir, e.g. ``linux-64`` or ``osx-arm64``, as py-rattler
    detects it (``rattler.Subdir.current()``; synchronous, so safe in this process)."""
    import rattler

    return str(rattler.Subdir.current())


def check_match_spec(spec: str) -> str | None:
    """Why ``spec`` is not a valid named match spec, or None if it is (py-rattler's parser)."""
    import rattler
    from rattler.exceptions import InvalidMatchSpecError

    ms = guarded(rattler.MatchSpec, spec, strict=True)  # what the solver accepts
    if isinstance(ms, InvalidMatchSpecError):
        return str(ms)
    if isinstance(ms, BaseException):  # other parse errors, and pyo3's PanicException
        return f"{type(ms).__name__}: {show(str(ms))}"
    if ms.name is None:
        return "a match spec needs a package name"
    return None


def spec_name(spec: str) -> str:
    """The normalised package name of a valid match spec."""
    import rattler

    name = rattler.MatchSpec(spec).name
    assert name is not None
    return name.normalized


def pypi_name(requirement: str) -> str:
    """The canonical (PEP 503) distribution name of a PEP 508 requirement string."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return canonicalize_name(Requirement(requirement).name)


def _strings(raw: Any) -> tuple[str, ...]:
    """A list of non-empty strings (the schema has checked it), stripped."""
    return tuple(v.strip() for v in raw)


def _pypi_requirement(c: Checker, req: str, key: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        parsed = Requirement(req)
    except (InvalidRequirement, ValueError) as e:
        raise c.fail(key, f"{show(req)} is not a valid PEP 508 requirement: {e}") from None
    if parsed.url:
        raise c.fail(
            key, f"{show(req)}: direct URLs are not supported; name a version on the index"
        )
    return req


def _smoke(data: dict[str, Any]) -> Smoke:
    return Smoke(_strings(data.get("imports", [])), _strings(data.get("commands", [])))


def _pack(c: Checker, data: dict[str, Any]) -> PackOptions:
    fmt, level = data.get("format", "tar.zst"), data.get("level", 3)
    if fmt == "tar.gz" and level > 9:  # gzip's levels; the schema allows zstd's 1 to 19
        raise c.fail("pack.level", f"expected an integer from 1 to 9, got {show(level)}")
    return PackOptions(format=fmt, level=level)


def _docker(data: dict[str, Any]) -> DockerOptions:
    d = DockerOptions()
    prefix = data.get("prefix", d.prefix)
    return DockerOptions(
        base_image=data.get("base_image", d.base_image),
        user=data.get("user", d.user),
        uid=data.get("uid", d.uid),
        prefix=prefix.rstrip("/") or prefix,  # /opt/env/ is /opt/env
    )


def _cutoff(c: Checker, raw: Any) -> str:
    cutoff = utc_cutoff(raw)
    if cutoff is None:
        raise c.fail(
            "exclude-newer",
            f"{show(raw)} is not a date or a date and time with a zone; write e.g. "
            "2026-01-31 or 2026-01-31T12:00:00Z (UTC)",
        )
    return cutoff


DEFAULT_PLATFORMS = ("linux-64",)


def parse_document(data: Any, path: Path, has_parents: bool = False) -> tuple[Recipe, set[str]]:
    """Validate one loaded YAML document ``data`` read from ``path`` on its own (no parents
    merged: :mod:`envbuild.recipe.layers` does that; ``has_parents`` relaxes the required keys).
    Returns (the recipe as the file states it, the top-level keys the file sets).

    Raises RecipeError naming ``path``, the key path and the bad value.
    """
    c = Checker(path)
    if data is None:
        raise c.fail("", "the recipe is empty; it needs at least 'dependencies'")
    doc = c.structure(data)  # the schema first: keys, types, forms
    stem = path.stem
    name = doc.get("name", stem)
    if not NAME_RE.match(name):  # a file name the schema never saw
        raise c.fail("name", f"{show(name)} is not a valid environment name ({NAME_RULE})")
    if name != stem:
        raise c.fail(
            "name",
            f"{show(name)} must match the file name ({stem}.yml); for an environment.yml, "
            f"save it as {name}.yml in the recipes directory",
        )
    if "prefix" in doc:
        log.info("%s: prefix: ignored (envbuild decides where environments go)", c.where)
    channels = environment_yml.channels(_strings(doc["channels"])) if "channels" in doc else None
    if channels is not None and not channels:
        raise c.fail("channels", "at least one channel is needed, e.g. [conda-forge]")
    if "dependencies" not in doc and not has_parents:
        raise c.fail("dependencies", "missing; list the packages, e.g. ['python 3.11.*']")
    deps, pip = environment_yml.split_dependencies(c, doc.get("dependencies", []))
    if not deps and not has_parents:
        raise c.fail("dependencies", "is empty; list at least one package")
    for i, spec in enumerate(deps):
        problem = check_match_spec(spec)
        if problem:
            raise c.fail(f"dependencies[{i}]", f"{show(spec)} is not a valid match spec: {problem}")
    pypi = _strings(doc.get("pypi-dependencies", []))
    extends = doc.get("extends", ())
    jupyter = doc.get("jupyter", {})
    own = Recipe(
        name=name,
        path=path,
        channels=channels or (),
        platforms=tuple(dict.fromkeys(doc.get("platforms", ()))),
        dependencies=deps,
        smoke=_smoke(doc.get("smoke", {})),
        pack=_pack(c, doc.get("pack", {})),
        docker=_docker(doc.get("docker", {})),
        jupyter=JupyterOptions(
            jupyter.get("kernel", False), jupyter.get("display_name", "").strip()
        ),
        pypi_dependencies=(
            *(_pypi_requirement(c, r, f"pypi-dependencies[{i}]") for i, r in enumerate(pypi)),
            *(_pypi_requirement(c, req, key) for key, req in pip),
        ),
        virtual_packages=tuple((n, str(v)) for n, v in doc.get("virtual_packages", {}).items()),
        extends=(extends,) if isinstance(extends, str) else tuple(extends),
        exclude_newer=_cutoff(c, doc["exclude-newer"]) if "exclude-newer" in doc else "",
        variables=environment_yml.variables(c, doc.get("variables", {})),
    )
    return own, set(doc)
