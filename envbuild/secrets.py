"""Credentials: named as ``${VAR}``, supplied from the environment, never written or shown.

Channel URLs name credentials as ``${VAR}``; :mod:`envbuild.channels` takes them out of the URL
and py-rattler's authentication middleware adds them to requests, so no URL that envbuild
records or prints ever contains a secret. What remains here: checking that the named variables
are set, and masking anything that still looks like a credential in a URL inside a message
(a server's error text, say) — by pattern, never by replacing secret values in arbitrary text.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from envbuild.errors import ChannelError

if TYPE_CHECKING:
    from envbuild.channels import Route

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<info>[^/@\s]+)@", re.IGNORECASE)
_TOKEN = re.compile(r"/t/(?P<tok>[^/\s]+)(?=/|\s|$)")


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


def scrub(text: str) -> str:
    """``text`` with URL credentials (``user:pass@``, ``/t/<token>/``) masked as ``***``
    unless they are ``${VAR}`` references."""
    text = _USERINFO.sub(
        lambda m: (
            m.group("scheme") + (m.group("info") if _VAR.search(m.group("info")) else "***") + "@"
        ),
        text,
    )
    return _TOKEN.sub(lambda m: m.group(0) if _VAR.search(m.group("tok")) else "/t/***", text)


class ScrubFilter(logging.Filter):
    """A logging filter that masks URL credentials in every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True
