"""Masking credentials in messages: anything that still looks like a credential in a URL
(``user:pass@``, ``/t/<token>/``), a server's error text say, is shown as ``***`` unless it
is a ``${VAR}`` reference. By pattern, never by replacing secret values in arbitrary text.
Credentials themselves are named as ``${VAR}`` and checked by :mod:`envbuild.channels`."""

from __future__ import annotations

import logging
import re

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# a scheme starts where no scheme character precedes it: without the lookbehind the search
# restarted inside every long run of letters, quadratic (100,000 letters: 50 s)
_USERINFO = re.compile(
    r"(?<![a-z0-9+.-])(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<info>[^/@\s]+)@", re.IGNORECASE
)
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


def public_url_problem(value: object) -> str:
    """What makes ``value`` unfit for a public URL (a label such as
    ``org.opencontainers.image.source``): not an http(s) URL with a host, credentials
    (``user:pass@``), a query or fragment (``?private_token=...``), whitespace or control
    characters; "" if nothing. Parsed with urllib.parse; the value is never quoted. The
    answer ends with the fix."""
    problem = _url_problem(value)
    return (
        f"{problem}; write the plain https URL, e.g. https://github.com/org/envs" if problem else ""
    )


def _url_problem(value: object) -> str:
    import urllib.parse

    if not isinstance(value, str):
        return "expected a URL string"
    if not value:
        return ""
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        return "it is not a valid URL"
    if any(not ch.isprintable() or ch.isspace() for ch in value):
        return "it contains whitespace or control characters"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it is not an http(s) URL with a host"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "it carries credentials (user:password@), which would become a public label"
    if parts.query or parts.fragment or "?" in value or "#" in value:
        return "it has a query or fragment (?... or #...), which may hold a token"
    return ""
