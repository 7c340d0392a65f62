"""Masking credentials in messages: anything that still looks like a credential in a URL
(``user:pass@``, ``/t/<token>/``), a server's error text say, is shown as ``***`` unless it
is a ``${VAR}`` reference. By pattern, never by replacing secret values in arbitrary text.
Credentials themselves are named as ``${VAR}`` and checked by :mod:`envbuild.channels`."""

from __future__ import annotations

import logging
import re

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<info>[^/@\s]+)@", re.IGNORECASE)
_TOKEN = re.compile(r"/t/(?P<tok>[^/\s]+)(?=/|\s|$)")


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


def printable(text: object, limit: int = 300) -> str:
    """``text`` safe to print in one line of a message: URL credentials masked (:func:`scrub`),
    control and format characters (newline, carriage return, ESC, NUL, bidi overrides, ...)
    and backslashes shown as Python escapes (``\\n``, ``\\x1b``, ``\\u202e``), cut to
    ``limit`` characters with the count of the rest. For anything a registry, tarball or
    label says (https://www.unicode.org/reports/tr36/ on spoofing by format characters)."""
    import unicodedata

    out = []
    for ch in scrub(str(text)):
        if ch == "\\" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii") if ch != "\\" else "\\\\")
        else:
            out.append(ch)
    shown = "".join(out)
    if len(shown) > limit:
        shown = shown[:limit] + f"... ({len(shown) - limit} more characters)"
    return shown
