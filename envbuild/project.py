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

    [lock]                        # all optional
    platforms = ["linux-64"]      # default for recipes without 'platforms'
    channel_alias = "https://conda.anaconda.org"
    exclude-newer = 2026-01-31    # solve only packages published before (UTC); recipes may
                                  # set their own

    [nightly]
    mode = "promote"              # or "propose": test the candidate, write its lock and diff
                                  # (a pull-request body) to reports/, promote nothing

    [image]                       # the image written without an engine (docker stage)
    base = "build/base/bookworm-minbase.oci.tar"   # an OCI layout or its archive, optionally
                                  # pinned: "PATH@sha256:<hex>" (see envbuild.base_image)
    source = "https://github.com/org/envs"         # org.opencontainers.image.source

    [offline]                     # what `doit offline_channel` converts from PyPI wheels
    requirements = ["numpy", "pandas", "scikit-learn", "pip", "ipykernel"]

A mirror is transport only (see :mod:`envbuild.channels`): packages and repodata are fetched
from it, lockfiles record the canonical channel. There is no silent fallback to the original
channel. A recipe's lock never depends on the machine that made it: recipes without
``platforms`` lock for ``[lock] platforms`` (default ``["linux-64"]``), not for this machine.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envbuild import channels
from envbuild.errors import ConfigError

CONFIG_FILE = "envbuild.toml"
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
    "reports": "reports",
}
_TOP_KEYS = {"mirrors", "paths", "offline", "builds", "lock", "nightly", "image"}
_IMAGE_KEYS = ("base", "source")
NIGHTLY_MODES = ("promote", "propose")
_LOCK_KEYS = ("platforms", "channel_alias", "exclude-newer")
DEFAULT_OFFLINE_REQUIREMENTS = ("numpy", "pandas", "scikit-learn", "pip", "ipykernel")


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
    keep_builds: int = 3  # builds kept per environment, the current one included
    link_mode: str = "auto"  # "auto": reflink, else hard link, else copy; "copy": always copy
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS  # for recipes that name none
    channel_alias: str = channels.DEFAULT_CHANNEL_ALIAS
    exclude_newer: str = ""  # UTC cutoff for recipes that set none
    nightly_mode: str = "promote"  # "propose": stop before promotion, write lock + diff
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

    def route(self, channel: str) -> channels.Route:
        """How ``channel`` is recorded (canonical URL) and fetched (mirror or itself), with
        its credentials as variable names. Raises ConfigError for a URL with literal
        credentials."""
        target = self.mirrors.get(channel, channel)
        problem = channels.literal_credentials(target)
        if problem:
            where = (
                f"{self.root / CONFIG_FILE} [mirrors]"
                if channel in self.mirrors
                else "the recipe's channels"
            )
            msg = (
                f"{where}: channel '{channel}' has {problem}; write it as ${{VAR}} "
                "(e.g. https://host/t/${CONDA_TOKEN}/channel) and export the variable"
            )
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
            msg = f"{where}: unknown key '{key}'{did_you_mean(key, allowed)}"
            raise ConfigError(msg)
        if where != CONFIG_FILE and not isinstance(value, str):
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
    if cfg_path.exists():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            msg = f"{cfg_path}: invalid TOML: {e}"
            raise ConfigError(msg) from e
    _check_table(data, CONFIG_FILE, _TOP_KEYS)
    mirrors = _check_table(data.get("mirrors", {}), f"{cfg_path}: mirrors", None)
    paths_cfg = _check_table(data.get("paths", {}), f"{cfg_path}: paths", set(_PATH_KEYS))
    paths = {k: (root / paths_cfg.get(k, default)).resolve() for k, default in _PATH_KEYS.items()}
    if "bytecode_cache" not in paths_cfg:  # beside the package cache: same disk, same sharing
        pkgs = paths["package_cache"]
        paths["bytecode_cache"] = pkgs.with_name(pkgs.name + "-pyc")
    offline = data.get("offline", {})
    if not isinstance(offline, dict) or set(offline) - {"requirements"}:
        msg = f"{cfg_path}: offline: expected a table with the single key 'requirements'"
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
        or set(builds) - {"keep", "link"}
        or builds.get("link", "auto") not in LINK_MODES
    ):
        msg = (
            f"{cfg_path}: builds: expected a table with 'keep', an integer from 2 to 100 "
            "(builds kept per environment, the current one included), and optionally "
            f"'link', one of {', '.join(map(repr, LINK_MODES))}"
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
    image = _check_table(data.get("image", {}), f"{cfg_path}: image", set(_IMAGE_KEYS))
    base = image.get("base", "")
    if base and not base.startswith("/"):  # relative to the project, the digest kept
        base = str(root / base)
    return Project(
        root=root,
        image_base=base,
        image_source=image.get("source", ""),
        platforms=platforms,
        channel_alias=alias,
        exclude_newer=cutoff,
        nightly_mode=nightly.get("mode", "promote"),
        mirrors=dict(mirrors),
        paths=paths,
        offline_requirements=tuple(reqs),
        keep_builds=keep,
        link_mode=builds.get("link", "auto"),
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
