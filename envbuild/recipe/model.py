"""Recipe model: ``recipes/<name>.yml`` parsed and validated into frozen dataclasses.

Pure: reads YAML (``yaml.safe_load`` only) and never runs processes. Every error names the file,
the key path and the bad value, with a did-you-mean for unknown keys. Example::

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

from envbuild.channels import KNOWN_SUBDIRS, utc_cutoff
from envbuild.project import did_you_mean
from envbuild.recipe import environment_yml
from envbuild.recipe.validate import Checker, display, show
from envbuild.util.guard import guarded
from envbuild.util.reference import is_docker_image

# A recipe name is also the image repository envbuild/<name>: Docker's path component grammar
# (lower case; '.', '_', '__' or dashes only between letters and digits), at most 64
# characters (https://github.com/distribution/reference/blob/main/reference.go).
# \Z, not $: "$" also matches before a final newline.
NAME_RE = re.compile(r"^(?=.{1,64}\Z)[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
NAME_RULE = (
    "lower-case letters and digits, with '.', '_' or '-' only between them (it is also "
    "the image name envbuild/<name>)"
)
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
# an absolute path of plain segments: it is written into the Dockerfile (ADD, RUN, ENV)
PREFIX_RE = re.compile(r"^(?:/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)+\Z")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
PACK_FORMATS = ("tar.zst", "tar.gz")

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


_TOP = (
    "name", "extends", "channels", "platforms", "dependencies", "pypi-dependencies",
    "virtual_packages", "smoke", "pack", "docker", "exclude-newer",
    "variables", "prefix",  # environment.yml's own keys (prefix is ignored)
    "jupyter",
)  # fmt: skip
VIRTUAL_PACKAGE_NAMES = ("__cuda", "__glibc", "__osx", "__linux", "__win", "__unix", "__archspec")


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


def _pypi_deps(c: Checker, raw: Any) -> tuple[str, ...]:
    reqs = c.str_list(raw, "pypi-dependencies")
    for i, req in enumerate(reqs):
        _pypi_requirement(c, req, f"pypi-dependencies[{i}]")
    return reqs


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


def _virtual_packages(c: Checker, raw: Any) -> tuple[tuple[str, str], ...]:
    data = c.mapping(raw, "virtual_packages", VIRTUAL_PACKAGE_NAMES)
    out = []
    for name, version in data.items():
        if isinstance(version, int | float) and not isinstance(version, bool):
            version = str(version)
        if not isinstance(version, str) or not re.match(r"^[0-9A-Za-z_.]+$", version):
            raise c.fail(
                f"virtual_packages.{name}",
                f"expected a version such as '12.0', got {show(version)}",
            )
        out.append((name, version))
    return tuple(out)


def _smoke(c: Checker, raw: Any) -> Smoke:
    data = c.mapping(raw, "smoke", ("imports", "commands"))
    imports = c.str_list(data.get("imports", []), "smoke.imports")
    for i, mod in enumerate(imports):
        if not MODULE_RE.match(mod):
            raise c.fail(f"smoke.imports[{i}]", f"{show(mod)} is not a Python module name")
    return Smoke(imports=imports, commands=c.str_list(data.get("commands", []), "smoke.commands"))


def _pack(c: Checker, raw: Any) -> PackOptions:
    data = c.mapping(raw, "pack", ("format", "level"))
    fmt = c.string(data.get("format", "tar.zst"), "pack.format")
    if fmt not in PACK_FORMATS:
        raise c.fail(
            "pack.format",
            f"{show(fmt)} is not supported{did_you_mean(fmt, PACK_FORMATS)};"
            f" use one of {', '.join(PACK_FORMATS)}",
        )
    top = 19 if fmt == "tar.zst" else 9  # zstd's levels, gzip's
    return PackOptions(format=fmt, level=c.integer(data.get("level", 3), "pack.level", 1, top))


def _jupyter(c: Checker, raw: Any) -> JupyterOptions:
    data = c.mapping(raw, "jupyter", ("kernel", "display_name"))
    kernel = data.get("kernel", False)
    if not isinstance(kernel, bool):
        raise c.fail("jupyter.kernel", f"expected true or false, got {show(kernel)}")
    name = c.string(data["display_name"], "jupyter.display_name") if "display_name" in data else ""
    return JupyterOptions(kernel=kernel, display_name=name)


def _docker(c: Checker, raw: Any) -> DockerOptions:
    data = c.mapping(raw, "docker", ("base_image", "user", "uid", "prefix"))
    d = DockerOptions()
    user = c.string(data.get("user", d.user), "docker.user")
    if not USER_RE.match(user) or user == "root":
        raise c.fail(
            "docker.user",
            f"{show(user)} is not a valid non-root user name (lower-case letters, digits, "
            "'_', '-'; at most 32 characters)",
        )
    prefix = c.string(data.get("prefix", d.prefix), "docker.prefix")
    prefix = prefix.rstrip("/") or prefix  # /opt/env/ is /opt/env
    if not PREFIX_RE.match(prefix) or ".." in prefix.split("/"):
        raise c.fail(
            "docker.prefix",
            f"{show(prefix)} must be an absolute path without '..' of letters, digits and "
            "'.', '_', '+', '-' (e.g. /opt/env)",
        )
    base = c.string(data.get("base_image", d.base_image), "docker.base_image")
    if not is_docker_image(base):
        raise c.fail(
            "docker.base_image",
            f"{show(base)} is not an image reference such as debian:bookworm-slim or "
            "registry.example.com:5000/team/base:1.0",
        )
    return DockerOptions(
        base_image=base,
        user=user,
        uid=c.integer(data.get("uid", d.uid), "docker.uid", 1, 2**31 - 1),
        prefix=prefix,
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


def _extends(c: Checker, raw: Any) -> tuple[str, ...]:
    names = (raw,) if isinstance(raw, str) else c.str_list(raw, "extends")
    for i, n in enumerate(names):
        if not NAME_RE.match(n):
            raise c.fail(f"extends[{i}]", f"{show(n)} is not a recipe name")
    return tuple(names)


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
    doc = c.mapping(data, "", _TOP)
    stem = path.stem
    name = c.string(doc.get("name", stem), "name")
    if not NAME_RE.match(name):
        raise c.fail("name", f"{show(name)} is not a valid environment name ({NAME_RULE})")
    if name != stem:
        raise c.fail(
            "name",
            f"{show(name)} must match the file name ({stem}.yml); for an environment.yml, "
            f"save it as {name}.yml in the recipes directory",
        )
    if "prefix" in doc:
        log.info("%s: prefix: ignored (envbuild decides where environments go)", c.where)
    channels = c.str_list(doc["channels"], "channels") if "channels" in doc else None
    if channels is not None:
        channels = environment_yml.channels(channels)
    if channels is not None and not channels:
        raise c.fail("channels", "at least one channel is needed, e.g. [conda-forge]")
    platforms = c.str_list(doc["platforms"], "platforms") if "platforms" in doc else None
    for i, plat in enumerate(platforms or ()):
        if plat not in KNOWN_SUBDIRS:
            raise c.fail(
                f"platforms[{i}]",
                f"unknown platform {show(plat)}{did_you_mean(plat, KNOWN_SUBDIRS)}",
            )
    if "dependencies" not in doc and not has_parents:
        raise c.fail("dependencies", "missing; list the packages, e.g. ['python 3.11.*']")
    deps, pip = environment_yml.split_dependencies(c, doc.get("dependencies", []))
    if not deps and not has_parents:
        raise c.fail("dependencies", "is empty; list at least one package")
    for i, spec in enumerate(deps):
        problem = check_match_spec(spec)
        if problem:
            raise c.fail(f"dependencies[{i}]", f"{show(spec)} is not a valid match spec: {problem}")
    own = Recipe(
        name=name,
        path=path,
        channels=channels or (),
        platforms=tuple(dict.fromkeys(platforms or ())),
        dependencies=deps,
        smoke=_smoke(c, doc.get("smoke", {})),
        pack=_pack(c, doc.get("pack", {})),
        docker=_docker(c, doc.get("docker", {})),
        jupyter=_jupyter(c, doc.get("jupyter", {})),
        pypi_dependencies=(
            *_pypi_deps(c, doc.get("pypi-dependencies", [])),
            *(_pypi_requirement(c, req, key) for key, req in pip),
        ),
        virtual_packages=_virtual_packages(c, doc.get("virtual_packages", {})),
        extends=_extends(c, doc.get("extends", [])),
        exclude_newer=_cutoff(c, doc["exclude-newer"]) if "exclude-newer" in doc else "",
        variables=environment_yml.variables(c, doc.get("variables", {})),
    )
    return own, set(doc)
