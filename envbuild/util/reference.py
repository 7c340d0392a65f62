"""Image references, ``HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]``, parsed and checked as
the distribution spec names them (https://github.com/distribution/reference): the one parser
of image references, for the registry client (:func:`parse_reference`), ``[image] base``
(:func:`is_registry_ref`, :func:`split_pinned`) and a recipe's Docker base image
(:func:`is_docker_image`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from envbuild.errors import RegistryError
from envbuild.util.redact import printable, scrub

DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
# distribution/reference's grammar: path components, domain labels, tags, digests
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
_SHA256 = r"sha256:[0-9a-f]{64}"
_DIGEST = re.compile(rf"^{_SHA256}$")
# the domain: ASCII labels or a bracketed IPv6 address, an optional port
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[a-fA-F0-9:]+\])(?::(?P<port>[0-9]{{1,5}}))?")
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
# Docker's reading, where the host is optional (``debian:bookworm-slim`` is Docker Hub's)
_DOCKER_IMAGE = re.compile(
    rf"^(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?"
    rf"(?:@{_SHA256})?\Z"
)
# what Docker takes for a registry host in a first path component: a dot, a port, localhost
_REGISTRY_HOST = re.compile(
    r"^(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|[A-Za-z0-9.-]+:[0-9]+)$"
)
_PINNED = re.compile(rf"^(?P<name>.+)@(?P<digest>{_SHA256})$")


def looks_like_host(text: str) -> bool:
    """True if ``text`` is a registry host as Docker tells hosts from paths (``localhost``,
    a dotted name, or ``NAME:PORT``)."""
    return bool(_REGISTRY_HOST.match(text))


def is_registry_ref(value: str) -> bool:
    """True if ``value`` (``[image] base``) names a registry, ``HOST[:PORT]/REPO...`` (its
    first component is a host by :func:`looks_like_host`), rather than a path."""
    head, sep, _ = value.partition("/")
    return bool(sep) and not value.startswith((".", "/")) and looks_like_host(head)


def split_pinned(value: str) -> tuple[str, str] | None:
    """``"NAME@sha256:<64 hex>"`` -> (NAME, digest); None if ``value`` is not pinned so."""
    m = _PINNED.match(value)
    return (m["name"], m["digest"]) if m else None


def is_digest(value: object) -> bool:
    """True if ``value`` is a ``sha256:<64 lower-case hex>`` digest, the only kind we accept."""
    return isinstance(value, str) and bool(_DIGEST.fullmatch(value))


def is_docker_image(value: str) -> bool:
    """True if ``value`` is an image reference as Docker reads one, the host optional
    (``debian:bookworm-slim``, ``ghcr.io/org/img:1@sha256:<hex>``)."""
    return bool(_DOCKER_IMAGE.match(value))


@dataclass(frozen=True, slots=True)
class Reference:
    """``HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]``; ``tag`` is empty when a digest is given
    without one (then ``digest`` decides)."""

    host: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def target(self) -> str:
        """What a manifest request names: the digest if given, else the tag."""
        return self.digest or self.tag or "latest"

    def with_target(self, target: str) -> Reference:
        """The same repository at ``target`` (a tag, or a ``sha256:`` digest)."""
        if target.startswith("sha256:"):
            return Reference(self.host, self.repository, "", target)
        return Reference(self.host, self.repository, target, "")

    def __str__(self) -> str:
        out = f"{self.host}/{self.repository}"
        out += f":{self.tag}" if self.tag else ""
        return out + (f"@{self.digest}" if self.digest else "")


def parse_reference(text: str) -> Reference:
    """Parse ``HOST[:PORT]/NAMESPACE/NAME[:TAG][@sha256:HEX]`` (the host is required: no
    implicit Docker Hub). Raises RegistryError naming the part that is wrong."""
    text = text.strip()
    if "://" in text:  # a pasted URL: say so, never quote its parts (a password may be there)
        msg = (
            f"image reference {scrub(text)!r}: write it without a scheme, as "
            "HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX] (credentials go in docker login's "
            "config.json)"
        )
        raise RegistryError(msg)
    problem = _unsafe_part(text)
    if problem:  # never quoted: the part that is wrong may be a password or a token
        msg = f"image reference refused: {problem}; write HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]"
        raise RegistryError(msg)
    rest, _, digest = text.partition("@")
    host, _, path = rest.partition("/")
    tag = ""
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    problem = ""
    if not path or not ("." in host or ":" in host or host == "localhost"):
        problem = "it needs a registry host and a repository, e.g. ghcr.io/org/ml:current"
    elif not (m := _HOST.fullmatch(host)) or not 0 < int(m.group("port") or 1) <= 65535:
        problem = (
            f"host {printable(host, 100)!r} is not a registry host: ASCII letters, digits, "
            "'-' and '.', or [IPv6], then an optional :PORT (1-65535); no look-alike letters, "
            "%-escapes or IPv6 zones"
        )
    elif not _NAME.match(path):
        problem = (
            f"repository {printable(path, 100)!r} must be lower-case letters, digits and . _ - /"
        )
    elif digest and not is_digest(digest):
        problem = "the digest after @ is not sha256: followed by 64 lower-case hex digits"
    elif tag and not re.fullmatch(_TAG, tag):
        problem = f"tag {printable(tag, 100)!r} is not a valid tag"
    if problem:
        msg = f"image reference {printable(text, 200)!r}: {problem}"
        raise RegistryError(msg)
    if host in DOCKER_HUB and "/" not in path:
        path = f"library/{path}"  # Docker Hub's official images
    return Reference(host, path, tag or ("" if digest else "latest"), digest)


def _unsafe_part(text: str) -> str:
    """What makes ``text`` unsafe to quote or use ("" if nothing): credentials before the host
    (``user:pass@host/...``), a query or fragment (``?token=...``), whitespace or control
    characters."""
    if any(not ch.isprintable() or ch.isspace() for ch in text):
        return "it contains whitespace or control characters"
    if "@" in text.split("/", 1)[0] or text.count("@") > 1:
        return (
            "the host part carries credentials (user:password@host); remove them and log in "
            "with `docker login HOST` (envbuild reads Docker's config.json)"
        )
    if "?" in text or "#" in text:
        return (
            "it has a query or fragment (?... or #...), which no image reference has; remove it "
            "(tokens belong in Docker's config.json, through `docker login`)"
        )
    return ""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
