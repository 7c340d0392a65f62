"""The project: where recipes, lockfiles, environments and artifacts live, and channel mirrors.

Configuration is the optional ``envbuild.toml`` at the project root::

    [mirrors]                     # channel name -> URL or path (relative to the project root)
    conda-forge = "build/offline-channel"

    [paths]                       # all optional, relative to the project root
    package_cache = "build/pkgs"
    bytecode_cache = "build/pkgs-pyc"   # default: beside package_cache, named <it>-pyc

    [builds]                      # builds kept per environment (current + rollbacks)
    keep = 3
    link = "auto"                 # from the package cache: reflink, else hard link; or "copy"
    register = true               # list envs/<name> in ~/.conda/environments.txt (conda env list)

    [lock]                        # all optional
    platforms = ["linux-64"]      # default for recipes without 'platforms'
    channel_alias = "https://conda.anaconda.org"
    exclude-newer = 2026-01-31    # solve only packages published before (UTC); recipes may
                                  # set their own

    [nightly]
    mode = "promote"              # or "propose": test the candidate, write its lock and diff
                                  # (a pull-request body) to reports/, promote nothing

    [publish]                     # `doit publish`: where images and tarballs go
    registry = "ghcr.io/org"      # HOST[:PORT]/NAMESPACE; images are <it>/<recipe name>
    insecure = false              # allow plain http / unverified TLS (loopback needs none)
    signing_key = "${ENVBUILD_SIGNING_KEY}"   # or a path: sign provenance (util/keys.py)
    [image]                       # the image written without an engine (docker stage)
    base = "build/base/bookworm-minbase.oci.tar"   # an OCI layout or its archive, optionally
                                  # pinned: "PATH@sha256:<hex>", or "REGISTRY/NAME@sha256:<hex>"
                                  # pulled once (see envbuild.ship.base_image)
    source = "https://github.com/org/envs"         # org.opencontainers.image.source

    [offline]                     # what `doit offline_channel` converts from PyPI wheels
    requirements = ["numpy", "pandas", "scikit-learn", "pip", "ipykernel"]
    pins = "pins/offline-channel.txt"   # those, pinned with hashes (envbuild.offline.pins)

A mirror is transport only (see :mod:`envbuild.channels`): packages and repodata are fetched
from it, lockfiles record the canonical channel. There is no silent fallback to the original
channel. A recipe's lock never depends on the machine that made it: recipes without
``platforms`` lock for ``[lock] platforms`` (default ``["linux-64"]``), not for this machine.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envbuild import channels
from envbuild.errors import ConfigError
from envbuild.util import schema
from envbuild.util.fs import read_bounded
from envbuild.util.keys import configured_key
from envbuild.util.redact import public_url_problem, scrub
from envbuild.util.reference import is_registry_ref, looks_like_host, split_pinned
from envbuild.util.schema import did_you_mean as did_you_mean  # re-exported
from envbuild.util.schema import escaped, show

CONFIG_FILE = "envbuild.toml"
MAX_CONFIG_BYTES = 1 << 20
DEFAULT_PLATFORMS = ("linux-64",)

_PATH_KEYS = {
    "recipes": "recipes",
    "locks": "locks",
    "envs": "envs",
    "dist": "dist",
    "docker": "docker",
    "templates": "templates",
    "state": "build/state",
    "package_cache": "build/pkgs",
    "bytecode_cache": "build/pkgs-pyc",  # default: <package_cache>-pyc
    "repodata_cache": "build/repodata-cache",
    "offline_channel": "build/offline-channel",
    "offline_cache": "build/offline-cache",
    "base_cache": "build/base-cache",  # [image] base images pulled from a registry
    "reports": "reports",
}
DEFAULT_OFFLINE_REQUIREMENTS = ("numpy", "pandas", "scikit-learn", "pip", "ipykernel")
DEFAULT_OFFLINE_PINS = "pins/offline-channel.txt"
_VAR_FIX = "write it as ${VAR} (e.g. https://host/t/${CONDA_TOKEN}/channel) and export it"


@dataclass(frozen=True, slots=True)
class Project:
    """Resolved project settings. Paths are absolute."""

    root: Path
    mirrors: dict[str, str] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    offline_requirements: tuple[str, ...] = DEFAULT_OFFLINE_REQUIREMENTS
    offline_pins: Path = Path(DEFAULT_OFFLINE_PINS)  # absolute once loaded
    keep_builds: int = 3  # builds kept per environment, the current one included
    link_mode: str = "auto"  # "auto": reflink, else hard link, else copy; "copy": always copy
    register_envs: bool = True  # envs/<name> listed in conda's environments.txt
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS  # for recipes that name none
    channel_alias: str = channels.DEFAULT_CHANNEL_ALIAS
    exclude_newer: str = ""  # UTC cutoff for recipes that set none
    nightly_mode: str = "promote"  # "propose": stop before promotion, write lock + diff
    publish_registry: str = ""  # [publish] registry: HOST[:PORT]/NAMESPACE ("": not set)
    publish_insecure: bool = False  # [publish] insecure: plain http / unverified TLS allowed
    publish_signing_key: str = ""  # [publish] signing_key: absolute path or ${VAR} ("": unsigned)
    image_base: str = ""  # [image] base: "PATH" or "PATH@sha256:<hex>", PATH absolute
    image_source: str = ""  # [image] source: the org.opencontainers.image.source URL

    def path(self, key: str) -> Path:
        """The absolute directory for ``key`` (one of the [paths] keys)."""
        return self.paths[key]

    def recipe_file(self, name: str) -> Path:
        return self.path("recipes") / f"{name}.yml"

    def lockfile(self, name: str) -> Path:
        return self.path("locks") / f"{name}.conda-lock.yml"

    def env_prefix(self, name: str) -> Path:
        return self.path("envs") / name

    def recipe_names(self) -> list[str]:
        """Recipe names (file stems of ``recipes/*.yml``), sorted."""
        d = self.path("recipes")
        return sorted(p.stem for p in d.glob("*.yml")) if d.is_dir() else []

    def selected(self, env: str | None) -> list[str]:
        """The environments ``env`` names (comma-separated; spaces around a name ignored;
        each once, in order), or every recipe (:meth:`recipe_names`) if it names none. A
        non-printable character (from the command line or a recipe's file name) comes back
        escaped (:func:`escaped`): these names become task names and table cells, printed
        as they are, and an escaped one is no valid environment name (its lock says so)."""
        names = (e.strip() for e in (env or "").split(","))
        chosen = list(dict.fromkeys(e for e in names if e)) or self.recipe_names()
        return list(dict.fromkeys(escaped(e) for e in chosen))

    def route(self, channel: str) -> channels.Route:
        """How ``channel`` is recorded (canonical URL) and fetched (mirror or itself), with
        its credentials as variable names. Raises ConfigError for a URL with literal
        credentials."""
        problem = channels.literal_credentials(self.mirrors.get(channel, channel))
        if problem:  # a mirror's was refused when envbuild.toml was read
            msg = f"the recipe's channels: channel '{channel}' has {problem}; {_VAR_FIX}"
            raise ConfigError(msg)
        return channels.route(channel, self.mirrors, self.root, self.channel_alias)

    def mirror_hint(self, channel: str) -> str:
        """How to point ``channel`` somewhere else, for error messages."""
        where = self.root / CONFIG_FILE
        if channel in self.mirrors:
            return (
                f"channel '{channel}' is mirrored to {self.mirrors[channel]!r} by [mirrors] in "
                f"{where}; build that channel (`doit offline_channel` for the offline demo) or "
                "change the mirror"
            )
        return (
            f"if '{channel}' is not reachable from here, set a mirror in {where}:\n"
            f'    [mirrors]\n    {channel} = "https://your-mirror.example/{channel}"'
        )


@dataclass(frozen=True, slots=True)
class _Source:
    """``envbuild.toml`` as read: its path and text, to name the line of a key path."""

    path: Path
    text: str

    def where(self, key: str) -> str:
        """``<file>: line N: <key>`` (the line of ``key``, a key path such as
        ``lock.platforms``, when found; ``<file>: <key>`` else; ``<file>`` for ``""``)."""
        line = line_of(self.text, key)
        head = f"{self.path}: line {line}" if line else str(self.path)
        return f"{head}: {escaped(key)}" if key else head

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: {message}")


def line_of(text: str, key: str) -> int | None:
    """The 1-based line of ``text`` (TOML) that sets key path ``key`` (``table.key``): the
    key's assignment inside its table, else the table's header (or its dotted or inline
    assignment), else None."""
    table, _, rest = key.partition(".")
    if not table:
        return None

    def sets(word: str) -> re.Pattern[str]:
        return re.compile(rf"^\s*[\"']?{re.escape(word)}[\"']?\s*[=.]")

    header = re.compile(rf"^\s*\[\s*[\"']?{re.escape(table)}[\"']?\s*[\].]")
    lines = text.splitlines()
    start = next((i for i, t in enumerate(lines) if header.match(t) or sets(table).match(t)), None)
    if start is None:
        return None
    word = re.split(r"[.\[]", rest, maxsplit=1)[0]
    for i in range(start + 1, len(lines)):
        if not word or re.match(r"^\s*\[", lines[i]):
            break
        if sets(word).match(lines[i]):
            return i + 1
    return start + 1


def load_project(root: Path) -> Project:
    """Read ``<root>/envbuild.toml`` (optional) into a :class:`Project`: first against its
    schema (``envbuild/schemas/envbuild-toml.json``: unknown keys, types, ranges), then what
    no schema says (credentials in URLs, registry names, key files, dates, paths).

    Raises ConfigError naming the file, the line and the key path, with the fix, for
    invalid TOML and for any setting that is not valid.
    """
    root = root.resolve()
    cfg_path = root / CONFIG_FILE
    text = ""
    if cfg_path.exists() or cfg_path.is_symlink():
        try:
            text = read_bounded(cfg_path, MAX_CONFIG_BYTES).decode("utf-8")
            data = tomllib.loads(text)
        except OSError as e:
            msg = (
                f"{cfg_path}: cannot read: {e.strerror}; it must be a regular file (1 MiB at most)"
            )
            raise ConfigError(msg) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            where = re.search(r"\(at line (\d+), column \d+\)", str(e))  # tomllib's own
            line = f": line {where.group(1)}" if where else ""
            reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
            msg = f"{cfg_path}{line}: invalid TOML: {reason}"
            raise ConfigError(msg) from None
    else:
        data = {}
    source = _Source(cfg_path, text)
    problem = schema.check("config", data, table="a table")
    if problem is not None:
        raise source.fail(problem.path, problem.message)
    return _checked(data, source, root)


def _checked(data: dict[str, Any], source: _Source, root: Path) -> Project:
    """The :class:`Project` of ``data``, the parsed ``envbuild.toml`` that matches its schema:
    the checks no schema expresses, defaults, paths made absolute."""
    mirrors = data.get("mirrors", {})
    for key, url in mirrors.items():  # refused before any task runs, never quoted
        if problem := channels.literal_credentials(url):
            raise source.fail(f"mirrors.{key}", f"has {problem}; {_VAR_FIX}")
    paths_cfg = data.get("paths", {})
    paths = {k: (root / paths_cfg.get(k, default)).resolve() for k, default in _PATH_KEYS.items()}
    if "bytecode_cache" not in paths_cfg:  # beside the package cache: same disk, same sharing
        pkgs = paths["package_cache"]
        paths["bytecode_cache"] = pkgs.with_name(pkgs.name + "-pyc")
    offline, builds, nightly = (
        data.get("offline", {}),
        data.get("builds", {}),
        data.get("nightly", {}),
    )
    platforms, alias, cutoff = _lock_table(data.get("lock", {}), source)
    registry, insecure, signing_key = _publish_table(data.get("publish", {}), source, root)
    image = data.get("image", {})
    base = image.get("base", "")
    userinfo = "@" in base.split("/")[0] and looks_like_host(base.split("/")[0].rsplit("@")[-1])
    if "://" in base or userinfo or (is_registry_ref(base) and not split_pinned(base)):
        shown = scrub("https://" + base.split("://")[-1])[8:]
        msg = f"{shown!r} names a registry; write it by digest, no scheme, no credentials: "
        raise source.fail("image.base", msg + "REGISTRY/NAME@sha256:<64 hex>")
    if problem := public_url_problem(image.get("source", "")):  # a label: public, never quoted
        raise source.fail("image.source", f"refused: {problem}")
    if base and not is_registry_ref(base) and not base.startswith("/"):  # the digest kept
        base = str(root / base)
    return Project(
        root=root,
        publish_registry=registry,
        publish_insecure=insecure,
        publish_signing_key=signing_key,
        image_base=base,
        image_source=image.get("source", ""),
        platforms=platforms,
        channel_alias=alias,
        exclude_newer=cutoff,
        nightly_mode=nightly.get("mode", "promote"),
        mirrors=dict(mirrors),
        paths=paths,
        offline_requirements=tuple(offline.get("requirements", DEFAULT_OFFLINE_REQUIREMENTS)),
        offline_pins=(root / offline.get("pins", DEFAULT_OFFLINE_PINS)).resolve(),
        keep_builds=builds.get("keep", 3),
        link_mode=builds.get("link", "auto"),
        register_envs=builds.get("register", True),
    )


def _lock_table(data: dict[str, Any], source: _Source) -> tuple[tuple[str, ...], str, str]:
    platforms = data.get("platforms", list(DEFAULT_PLATFORMS))
    alias = data.get("channel_alias", channels.DEFAULT_CHANNEL_ALIAS)
    if problem := channels.literal_credentials(alias):
        msg = (
            f"has {problem}; write it as ${{VAR}} (e.g. "
            "https://${CONDA_USER}:${CONDA_PASSWORD}@host) and export the variable"
        )
        raise source.fail("lock.channel_alias", msg)
    cutoff = ""
    if "exclude-newer" in data:
        cutoff = channels.utc_cutoff(data["exclude-newer"]) or ""
        if not cutoff:
            msg = (
                f"{show(data['exclude-newer'])} is not a date or a date and time with a zone; "
                "write e.g. 2026-01-31 or 2026-01-31T12:00:00Z (UTC)"
            )
            raise source.fail("lock.exclude-newer", msg)
    return tuple(dict.fromkeys(platforms)), alias.rstrip("/"), cutoff


def _publish_table(data: dict[str, Any], source: _Source, root: Path) -> tuple[str, bool, str]:
    example = 'registry = "ghcr.io/your-org" (HOST[:PORT]/NAMESPACE) and optionally insecure'
    registry, insecure = data.get("registry", ""), data.get("insecure", False)
    host, _, namespace = registry.partition("/")
    if "://" in registry or "@" in host:  # never quote secrets
        shown = scrub("https://" + registry.split("://")[-1])[8:]
        msg = f"{shown!r} names a scheme or credentials; write HOST[:PORT]/"
        raise source.fail(
            "publish.registry", msg + f"NAMESPACE (credentials: docker login), e.g. {example}"
        )
    if registry and not (namespace and looks_like_host(host)):
        msg = f"{registry!r} is not HOST[:PORT]/NAMESPACE; write e.g. {example}"
        raise source.fail("publish.registry", msg)
    if namespace and not re.fullmatch(r"[a-z0-9]+(?:[._/-]+[a-z0-9]+)*/?", namespace):
        msg = f"namespace {namespace!r} must be lower-case letters, digits "
        raise source.fail("publish.registry", msg + "and . _ - / (OCI repository names)")
    signing = configured_key(data.get("signing_key"), root, source.where("publish.signing_key"))
    return registry.rstrip("/"), insecure, signing
