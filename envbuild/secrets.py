"""Credentials in channel URLs: supplied from the environment, never written or shown.

Channel URLs (in recipes or ``[mirrors]``) name credentials as ``${VAR}``
(``https://${USER}:${PASS}@host/c``, ``https://host/t/${TOKEN}/c``), the convention conda and
conda-lock use. Lockfiles keep the ``${VAR}`` form; the values are read at run time, registered
here, and scrubbed from every message, log line and conda-meta record. Literal credentials in a
URL are refused.
"""

from __future__ import annotations

import logging
import os
import re

from envbuild.errors import ChannelError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<info>[^/@\s]+)@")
_TOKEN = re.compile(r"/t/(?P<tok>[^/\s]+)/")
_known: dict[str, str] = {}  # secret value -> ${VAR}


def literal_credentials(url: str) -> str | None:
    """What looks like a literal credential in ``url`` (not a ``${VAR}``), or None."""
    m = _USERINFO.search(url)
    if m and not _VAR.fullmatch(m.group("info").split(":")[-1]):
        return "user:password in the URL"
    t = _TOKEN.search(url)
    if t and not _VAR.fullmatch(t.group("tok")):
        return "a /t/<token>/ in the URL"
    return None


def expand(url: str, where: str) -> str:
    """``url`` with each ``${VAR}`` replaced by its environment value (registered as secret).

    Raises ChannelError naming the variable when it is not set."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            msg = (
                f"{where}: the channel URL uses ${{{name}}}, but {name} is not set in the "
                "environment; export it (credentials are never stored in files)"
            )
            raise ChannelError(msg)
        secret = os.environ[name]
        if secret:
            _known[secret] = f"${{{name}}}"
        return secret

    return _VAR.sub(value, url)


def scrub(text: str) -> str:
    """``text`` with registered secret values replaced by their ``${VAR}`` and any remaining
    URL credentials masked."""
    for secret, name in sorted(_known.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(secret, name)
    text = _USERINFO.sub(
        lambda m: (
            m.group("scheme") + (m.group("info") if _VAR.search(m.group("info")) else "***") + "@"
        ),
        text,
    )
    return _TOKEN.sub(lambda m: m.group(0) if _VAR.search(m.group("tok")) else "/t/***/", text)


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs credentials from every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True
