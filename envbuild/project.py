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

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envbuild import channels
from envbuild.errors import ConfigError
from envbuild.util.fs import read_bounded
from envbuild.util.keys import configured_key
from envbuild.util.redact import public_url_problem, scrub
from envbuild.util.reference import is_registry_ref, looks_like_host, split_pinned

CONFIG_FILE = "envbuild.toml"
MAX_CONFIG_BYTES = 1 << 20
DEFAULT_PLATFORMS = ("linux-64",)
LINK_MODES = ("auto", "copy")

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
_TOP_KEYS = {"mirrors", "paths", "offline", "builds", "lock", "nightly", "publish", "image"}
_IMAGE_KEYS = ("base", "source")
NIGHTLY_MODES = ("promote", "propose")
_LOCK_KEYS = ("platforms", "channel_alias", "exclude-newer")
DEFAULT_OFFLINE_REQUIREMENTS = ("numpy", "pandas", "scikit-learn", "pip", "ipykernel")
DEFAULT_OFFLINE_PINS = "pins/offline-channel.txt"
_OFFLINE_KEYS = ("requirements", "pins")
_VAR_FIX = "write it as ${VAR} (e.g. https://host/t/${CONDA_TOKEN}/channel) and export it"


def did_you_mean(word: str, choices: object) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)  # type: ignore[attr-defined]
    return f" (did you mean '{close[0]}'?)" if close else ""


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
        each once, in order), or every recipe (:meth:`recipe_names`) if it names none."""
        names = (e.strip() for e in (env or "").split(","))
        return list(dict.fromkeys(e for e in names if e)) or self.recipe_names()

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


def _check_table(data: Any, where: str, allowed: set[str] | None) -> dict[str, Any]:
    if not isinstance(data, dict):
        msg = f"{where}: expected a table, got {type(data).__name__}"
        raise ConfigError(msg)
    for key, value in data.items():
        if allowed is not None and key not in allowed:
            hint = did_you_mean(key, allowed) or f" (known: {', '.join(sorted(allowed))})"
            msg = f"{where}: unknown key '{key}'{hint}"
            raise ConfigError(msg)
        if allowed is not _TOP_KEYS and not isinstance(value, str):
            msg = f"{where}.{key}: expected a string, got {type(value).__name__}"
            raise ConfigError(msg)
    return data


def load_project(root: Path) -> Project:
    """Read ``<root>/envbuild.toml`` (optional) into a :class:`Project`.

    Raises ConfigError naming the file and key for invalid TOML, unknown keys or bad types.
    """
    root = root.resolve()
    cfg_path = root / CONFIG_FILE
    data: dict[str, Any] = {}
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
            where = re.search(r"\(at line (\d+), column \d+\)", str(e))
            line = f": line {where.group(1)}" if where else ""
            reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
            msg = f"{cfg_path}{line}: invalid TOML: {reason}"
            raise ConfigError(msg) from None
        try:
            return _checked(data, cfg_path, root)
        except ConfigError as e:
            raise ConfigError(_with_line(str(e), cfg_path, text)) from None
    return _checked(data, cfg_path, root)


def _with_line(message: str, cfg_path: Path, text: str) -> str:
    """``message`` (``<file>: <table>[.<key>]: ...``) with the line of the key or table it
    names, when found in ``text``: ``<file>: line N: <table>...``."""
    head = f"{cfg_path}: "
    if not message.startswith(head):
        return message
    rest = message[len(head) :]
    unknown = re.search(r"unknown key '([^']+)'", rest)
    where = rest.split(":", 1)[0].split(".")
    words = [unknown.group(1)] if unknown else [where[-1], where[0]]
    for word in words:
        pattern = re.compile(rf"^\s*(\[\s*{re.escape(word)}\s*\]|\"?{re.escape(word)}\"?\s*=)")
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.match(line):
                return f"{head}line {number}: {rest}"
    return message


def _checked(data: dict[str, Any], cfg_path: Path, root: Path) -> Project:
    """The :class:`Project` of the parsed ``envbuild.toml`` ``data``."""
    _check_table(data, str(cfg_path), _TOP_KEYS)
    mirrors = _check_table(data.get("mirrors", {}), f"{cfg_path}: mirrors", None)
    for key, url in mirrors.items():  # refused before any task runs, never quoted
        problem = channels.literal_credentials(url) if isinstance(url, str) else None
        if problem:
            raise ConfigError(f"{cfg_path}: mirrors.{key}: has {problem}; {_VAR_FIX}")
    paths_cfg = _check_table(data.get("paths", {}), f"{cfg_path}: paths", set(_PATH_KEYS))
    paths = {k: (root / paths_cfg.get(k, default)).resolve() for k, default in _PATH_KEYS.items()}
    if "bytecode_cache" not in paths_cfg:  # beside the package cache: same disk, same sharing
        pkgs = paths["package_cache"]
        paths["bytecode_cache"] = pkgs.with_name(pkgs.name + "-pyc")
    offline = data.get("offline", {})
    if not isinstance(offline, dict):
        msg = f"{cfg_path}: offline: expected a table with 'requirements' and 'pins'"
        raise ConfigError(msg)
    for key in offline:
        if key not in _OFFLINE_KEYS:
            msg = f"{cfg_path}: offline: unknown key '{key}'{did_you_mean(key, _OFFLINE_KEYS)}"
            raise ConfigError(msg)
    pins = offline.get("pins", DEFAULT_OFFLINE_PINS)
    if not isinstance(pins, str) or not pins:
        msg = f'{cfg_path}: offline.pins: expected a pin file path, e.g. "{DEFAULT_OFFLINE_PINS}"'
        raise ConfigError(msg)
    reqs = offline.get("requirements", list(DEFAULT_OFFLINE_REQUIREMENTS))
    if not isinstance(reqs, list) or not all(isinstance(r, str) and r for r in reqs):
        msg = f"{cfg_path}: offline.requirements: expected a list of PyPI requirement strings"
        raise ConfigError(msg)
    builds = data.get("builds", {})
    keep = builds.get("keep", 3) if isinstance(builds, dict) else None
    if (
        not isinstance(keep, int)
        or isinstance(keep, bool)
        or not 2 <= keep <= 100
        or set(builds) - {"keep", "link", "register"}
        or builds.get("link", "auto") not in LINK_MODES
        or not isinstance(builds.get("register", True), bool)
    ):
        msg = (
            f"{cfg_path}: builds: expected a table with 'keep', an integer from 2 to 100 "
            "(builds kept per environment, the current one included), and optionally "
            f"'link', one of {', '.join(map(repr, LINK_MODES))}, and 'register', true or "
            "false (list environments in conda's environments.txt)"
        )
        raise ConfigError(msg)
    platforms, alias, cutoff = _lock_table(data.get("lock", {}), cfg_path)
    nightly = data.get("nightly", {})
    if (
        not isinstance(nightly, dict)
        or set(nightly) - {"mode"}
        or nightly.get("mode", "promote") not in NIGHTLY_MODES
    ):
        msg = f'{cfg_path}: nightly: expected a table with mode = "promote" or "propose"'
        raise ConfigError(msg)
    registry, insecure, signing_key = _publish_table(data.get("publish", {}), cfg_path, root)
    image = _check_table(data.get("image", {}), f"{cfg_path}: image", set(_IMAGE_KEYS))
    base = image.get("base", "")
    if not isinstance(base, str):
        msg = f'{cfg_path}: image.base: expected a string, e.g. "build/base/bookworm.oci.tar"'
        raise ConfigError(msg)
    userinfo = "@" in base.split("/")[0] and looks_like_host(base.split("/")[0].rsplit("@")[-1])
    if "://" in base or userinfo or (is_registry_ref(base) and not split_pinned(base)):
        shown = scrub("https://" + base.split("://")[-1])[8:]
        msg = f"{cfg_path}: image.base: {shown!r} names a registry; write it by digest, no "
        raise ConfigError(msg + "scheme, no credentials: REGISTRY/NAME@sha256:<64 hex>")
    if problem := public_url_problem(image.get("source", "")):  # a label: public, never quoted
        raise ConfigError(f"{cfg_path}: image.source: refused: {problem}")
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
        offline_requirements=tuple(reqs),
        offline_pins=(root / pins).resolve(),
        keep_builds=keep,
        link_mode=builds.get("link", "auto"),
        register_envs=builds.get("register", True),
    )


def _lock_table(data: Any, cfg_path: Path) -> tuple[tuple[str, ...], str, str]:
    where = f"{cfg_path}: lock"
    if not isinstance(data, dict):
        msg = f"{where}: expected a table with {', '.join(_LOCK_KEYS)}"
        raise ConfigError(msg)
    for key in data:
        if key not in _LOCK_KEYS:
            msg = f"{where}: unknown key '{key}'{did_you_mean(key, _LOCK_KEYS)}"
            raise ConfigError(msg)
    platforms = data.get("platforms", list(DEFAULT_PLATFORMS))
    if not isinstance(platforms, list) or not platforms:
        msg = f'{where}.platforms: expected a non-empty list such as ["linux-64", "osx-arm64"]'
        raise ConfigError(msg)
    for plat in platforms:
        if plat not in channels.KNOWN_SUBDIRS:
            msg = (
                f"{where}.platforms: unknown platform {plat!r}"
                f"{did_you_mean(str(plat), channels.KNOWN_SUBDIRS)}"
            )
            raise ConfigError(msg)
    alias = data.get("channel_alias", channels.DEFAULT_CHANNEL_ALIAS)
    if not isinstance(alias, str) or "://" not in alias:
        msg = f'{where}.channel_alias: expected a URL such as "https://conda.anaconda.org"'
        raise ConfigError(msg)
    problem = channels.literal_credentials(alias)
    if problem:
        msg = (
            f"{where}.channel_alias: has {problem}; write it as ${{VAR}} (e.g. "
            "https://${CONDA_USER}:${CONDA_PASSWORD}@host) and export the variable"
        )
        raise ConfigError(msg)
    cutoff = ""
    if "exclude-newer" in data:
        cutoff = channels.utc_cutoff(data["exclude-newer"]) or ""
        if not cutoff:
            msg = (
                f"{where}.exclude-newer: {data['exclude-newer']!r} is not a date or a date and "
                "time with a zone; write e.g. 2026-01-31 or 2026-01-31T12:00:00Z (UTC)"
            )
            raise ConfigError(msg)
    return tuple(dict.fromkeys(platforms)), alias.rstrip("/"), cutoff


def _publish_table(data: Any, cfg_path: Path, root: Path) -> tuple[str, bool, str]:
    where = f"{cfg_path}: publish"
    example = 'registry = "ghcr.io/your-org" (HOST[:PORT]/NAMESPACE) and optionally insecure'
    if not isinstance(data, dict):
        msg = f"{where}: expected a table with {example}"
        raise ConfigError(msg)
    for key in sorted(set(data) - set(keys := ("registry", "insecure", "signing_key"))):
        raise ConfigError(f"{where}: unknown key '{key}'{did_you_mean(key, keys)}")
    registry, insecure = data.get("registry", ""), data.get("insecure", False)
    host, _, namespace = str(registry).partition("/")
    if isinstance(registry, str) and ("://" in registry or "@" in host):  # never quote secrets
        shown = scrub("https://" + registry.split("://")[-1])[8:]
        msg = f"{where}.registry: {shown!r} names a scheme or credentials; write HOST[:PORT]/"
        raise ConfigError(msg + f"NAMESPACE (credentials: docker login), e.g. {example}")
    if not isinstance(registry, str) or (registry and not (namespace and looks_like_host(host))):
        msg = f"{where}.registry: {registry!r} is not HOST[:PORT]/NAMESPACE; write e.g. {example}"
        raise ConfigError(msg)
    if namespace and not re.fullmatch(r"[a-z0-9]+(?:[._/-]+[a-z0-9]+)*/?", namespace):
        msg = f"{where}.registry: namespace {namespace!r} must be lower-case letters, digits "
        raise ConfigError(msg + "and . _ - / (OCI repository names)")
    if not isinstance(insecure, bool):
        raise ConfigError(f"{where}.insecure: expected true or false")
    signing = configured_key(data.get("signing_key"), root, f"{where}.signing_key")
    return registry.rstrip("/"), insecure, signing
