"""Channels: the canonical name a lockfile records, and the route used to reach it.

A recipe names channels (``conda-forge``, ``https://repo.example/internal``). The lockfile,
its explicit files and every ``conda-meta`` record carry the *canonical* channel URL, expanded
the way conda does: a bare name ``X`` becomes ``<channel_alias>/X`` (conda's default alias is
``https://conda.anaconda.org``;
https://docs.conda.io/projects/conda/en/latest/user-guide/configuration/settings.html#channel-alias).

``[mirrors]`` in ``envbuild.toml`` is transport only: where repodata and packages are fetched
from (a ``file://`` directory, an internal https mirror). It is applied when fetching and never
recorded, so a lockfile does not depend on the machine, the clone's path or the mirror.

Credentials are never part of a URL's text. A URL may name them as ``${VAR}``
(``https://host/t/${TOKEN}/channel`` for an anaconda.org-style token,
``https://${USER}:${PASSWORD}@host/channel`` for basic auth); they are taken out of the URL and
handed to py-rattler's authentication middleware as an entry for the host (the
``RATTLER_AUTH_FILE`` format: https://pixi.sh/latest/deployment/authentication/), whose values
are read from the environment in the py-rattler worker only.

Pure: no I/O beyond reading environment variables to check they are set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from envbuild.errors import ChannelError

DEFAULT_CHANNEL_ALIAS = "https://conda.anaconda.org"
KNOWN_SUBDIRS = (
    "linux-64", "linux-aarch64", "linux-ppc64le", "linux-s390x", "linux-32",
    "osx-64", "osx-arm64", "win-64", "win-arm64", "win-32", "emscripten-wasm32",
)  # fmt: skip

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOKEN = re.compile(r"/t/(?P<tok>[^/\s]+)(?=/|$)")  # at the end too: a channel_alias
# schemes are case-insensitive (RFC 3986 3.1): HTTP://user:pass@host is a credential too
_USERINFO = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<info>[^/@\s]+)@", re.IGNORECASE)
_AUTHORITY = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<info>[^/@\s]*@)?(?P<host>[^/]*)",
                        re.IGNORECASE)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Credential:
    """Authentication for one host, with secrets as environment variable names.

    ``kind`` is ``CondaToken`` (``value`` names the token variable) or ``BasicHTTP``
    (``value`` is ``USERVAR:PASSVAR``), the two kinds py-rattler's auth storage knows."""

    host: str
    kind: str
    value: str

    def variables(self) -> tuple[str, ...]:
        return tuple(self.value.split(":"))


@dataclass(frozen=True, slots=True)
class Route:
    """How channel ``name`` is recorded (``canonical``) and reached (``transport``)."""

    name: str
    canonical: str  # e.g. https://conda.anaconda.org/conda-forge, no trailing slash
    transport: str  # e.g. file:///srv/mirror/conda-forge, no credentials in it
    credential: Credential | None = None

    def to_transport(self, url: str) -> str:
        """A canonical package URL under this channel as the URL to fetch it from."""
        return self.transport + url[len(self.canonical) :] if self.owns(url) else url

    def to_canonical(self, url: str) -> str:
        """A fetched URL (under ``transport``) as the canonical URL to record."""
        t = self.transport.rstrip("/")
        if url == t or url.startswith(t + "/"):
            return self.canonical + url[len(t) :]
        return url

    def owns(self, url: str) -> bool:
        """True if canonical ``url`` is this channel or a file in it."""
        return url == self.canonical or url.startswith(self.canonical + "/")


def literal_credentials(url: str) -> str | None:
    """What looks like a literal credential in ``url`` (not a ``${VAR}``), or None."""
    m = _USERINFO.search(url)
    if m and not all(_VAR.fullmatch(part) for part in m.group("info").split(":")):
        return "user:password in the URL"
    t = _TOKEN.search(url)
    if t and not _VAR.fullmatch(t.group("tok")):
        return "a /t/<token>/ in the URL"
    return None


def split_credentials(url: str) -> tuple[str, Credential | None]:
    """``url`` without its ``${VAR}`` credentials, and the credential they name (or None).

    ``https://h/t/${T}/c`` -> (``https://h/c``, CondaToken T for h);
    ``https://${U}:${P}@h/c`` -> (``https://h/c``, BasicHTTP U:P for h)."""
    t = _TOKEN.search(url)
    if t and (var := _VAR.fullmatch(t.group("tok"))):
        bare = url[: t.start()] + url[t.end() :]
        return bare, Credential(urlsplit(bare).hostname or "", "CondaToken", var.group(1))
    m = _USERINFO.search(url)
    if m:
        parts = [_VAR.fullmatch(p) for p in m.group("info").split(":")]
        if len(parts) == 2 and all(parts):
            bare = m.group("scheme") + url[m.end() :]
            value = ":".join(p.group(1) for p in parts if p)
            return bare, Credential(urlsplit(bare).hostname or "", "BasicHTTP", value)
    return url, None


def normal_url(url: str) -> str:
    """``url`` with its scheme and host in lower case (both are case-insensitive, and the
    fetched URLs py-rattler reports are lower case) and no trailing slash; credentials
    (``${VAR}`` names are case-sensitive) and path untouched."""
    m = _AUTHORITY.match(url)
    if m is None:
        return url.rstrip("/")
    head = f"{m.group('scheme').lower()}://{m.group('info') or ''}{m.group('host').lower()}"
    return (head + url[m.end() :]).rstrip("/")


def full_url(channel: str, alias: str = DEFAULT_CHANNEL_ALIAS) -> str:
    """``channel`` as a URL, credentials (``${VAR}``) still in it: ``conda-forge`` ->
    ``<alias>/conda-forge``; a URL stays itself, normalised (:func:`normal_url`)."""
    if "://" in channel:
        return normal_url(channel)
    return normal_url(f"{alias.rstrip('/')}/{channel.strip('/')}")


def canonical_url(channel: str, alias: str = DEFAULT_CHANNEL_ALIAS) -> str:
    """The URL a lockfile records for ``channel`` as a recipe names it (credentials removed,
    the alias's too): ``conda-forge`` -> ``<alias>/conda-forge``."""
    return split_credentials(full_url(channel, alias))[0]


def transport_url(target: str, root: Path) -> str:
    """A mirror target from ``[mirrors]`` as a URL: a URL as is (normalised), a path
    (relative to the project ``root``) as a ``file://`` URL."""
    if "://" in target:
        return normal_url(target)
    return (root / target).resolve().as_uri()


def route(
    channel: str, mirrors: dict[str, str], root: Path, alias: str = DEFAULT_CHANNEL_ALIAS
) -> Route:
    """The :class:`Route` of ``channel``: canonical URL, mirror (looked up by the channel's
    name or its canonical URL) or the channel itself, and credentials found in either."""
    canonical = canonical_url(channel, alias)
    target = mirrors.get(channel, mirrors.get(canonical))
    # without a mirror: the channel itself, with the alias's credentials if it has some
    raw = transport_url(target, root) if target is not None else full_url(channel, alias)
    transport, credential = split_credentials(raw)
    return Route(channel, canonical, transport, credential)


def auth_entries(routes: list[Route]) -> dict[str, dict[str, str]]:
    """host -> {kind: variable names} for the worker, which reads the values from its
    environment and writes py-rattler's auth file (``RATTLER_AUTH_FILE`` format)."""
    return {
        r.credential.host: {"kind": r.credential.kind, "vars": r.credential.value}
        for r in routes
        if r.credential is not None
    }


def utc_cutoff(value: object) -> str | None:
    """An ``exclude-newer`` value (a date ``2026-01-31``, or a date and time with a zone, e.g.
    ``2026-01-31T12:00:00Z``; YAML/TOML dates and datetimes too) as ``YYYY-MM-DDTHH:MM:SSZ``
    in UTC, or None if it is not one. A bare date means its start, 00:00 UTC."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        if isinstance(value, str) and "T" in value:
            return None  # a time without a zone is ambiguous
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def require(variables: tuple[str, ...], where: str) -> None:
    """Raise ChannelError naming the first of ``variables`` not set in the environment."""
    for name in variables:
        if name not in os.environ:
            msg = (
                f"{where}: the channel URL uses ${{{name}}}, but {name} is not set in the "
                "environment; export it (credentials are never stored in files)"
            )
            raise ChannelError(msg)


def require_credentials(routes: Iterable[Route]) -> None:
    """Raise ChannelError if a variable that one of ``routes`` names for its credentials is
    not set (checked before any request, so the message names the channel, not a 401)."""
    for r in routes:
        if r.credential is not None:
            require(r.credential.variables(), f"channel '{r.name}'")
