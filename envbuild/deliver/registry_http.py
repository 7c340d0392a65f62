"""What a registry client may believe of HTTP: where a URL may point and who gets our
credentials there, how many bytes an answer may have, how long a whole transfer may take.

* **URL policy** (:func:`check_url`): a URL a registry hands us (an upload ``Location``, a
  redirect, a token realm) is parsed with :mod:`urllib.parse` and :mod:`ipaddress`, never by
  string tricks: no userinfo, http or https only, plain http only to a loopback host (or with
  ``insecure``), the same rule Docker applies to a registry itself.
* **Credentials by origin** (:func:`same_origin`): ``Authorization`` goes only to the
  registry's own scheme, host and port (RFC 6454 origins); a redirect or ``Location``
  elsewhere gets none.
* **Bounds**: a manifest, index, config or token answer is at most :data:`MAX_DOCUMENT`
  bytes, read as a stream and abandoned one byte past it; a blob is read up to its declared
  size plus one byte; ``Content-Length`` and sizes from descriptors are checked (integers,
  ``>= 0``, at most :data:`MAX_BLOB`) before use.
* **One deadline** (:class:`Deadline`): a whole pull or publish ends by a monotonic time;
  each read waits at most :data:`READ_TIMEOUT` seconds, and never past the deadline; a read
  returns what has arrived (``read1``), so a drip of bytes meets the deadline too. A
  registry dripping its response *headers* (read inside ``requests``, where no deadline is
  checked) is stopped by :func:`watchdog`: in the main thread, a timer signal at the deadline
  interrupts whatever read is blocked.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from envbuild.errors import RegistryError

MAX_DOCUMENT = 4 << 20  # bytes: manifests, indexes, configs, token answers, error bodies
MAX_BLOB = 1 << 40  # bytes: 1 TiB, far above any environment, far below int trouble
READ_TIMEOUT = 60.0  # seconds without a byte from the registry
DEADLINE = 6 * 3600.0  # seconds for all of one pull's or publish's requests (default)
CHUNK = 1 << 16  # bytes per read


class NetworkError(RegistryError):
    """The connection failed mid-transfer (reset, cut short, timed out): not a disk problem."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """The monotonic time ``end`` (seconds, as ``clock`` counts them; None: no deadline) by
    which the whole transfer must be done. ``clock`` is injectable for tests."""

    end: float | None = None
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A deadline ``seconds`` from now (None: none)."""
        return cls(None if seconds is None else clock() + seconds, clock)

    def timeout(self, where: str) -> float:
        """The timeout for the next read (seconds): :data:`READ_TIMEOUT`, less if the
        deadline is nearer. Raises NetworkError naming ``where`` if it has passed."""
        if self.end is None:
            return READ_TIMEOUT
        left = self.end - self.clock()
        if left <= 0:
            msg = (
                f"{where}: the deadline for the whole transfer passed; the registry is too "
                "slow (or stalls on purpose); try again later, or from a nearer registry"
            )
            raise NetworkError(msg)
        return min(READ_TIMEOUT, left)


@contextlib.contextmanager
def watchdog(deadline: Deadline, what: str) -> Iterator[None]:
    """Raise NetworkError naming ``what`` if the block is still running at ``deadline``, even
    inside a blocking read (a registry dripping its headers a byte a minute): ``SIGALRM``
    (``setitimer``) in the main thread, where Python runs signal handlers. Elsewhere (another
    thread, or no deadline) the per-read timeouts and :meth:`Deadline.timeout` still apply."""
    left = None if deadline.end is None else deadline.end - deadline.clock()
    if left is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(_signum: int, _frame: Any) -> None:
        msg = (
            f"{what}: not done by the deadline for the whole transfer; the registry is too "
            "slow (or stalls on purpose, its response headers included); try again later"
        )
        raise NetworkError(msg)

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (``name[:port]`` or ``[v6][:port]``, no userinfo) is this machine's
    loopback: ``localhost`` or a loopback address. Parsed with urllib.parse and ipaddress:
    ``[::1]@evil.example`` is not loopback."""
    try:
        parts = urllib.parse.urlsplit("//" + host)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        return False
    name = parts.hostname
    if name is None or parts.username is not None or parts.password is not None:
        return False
    if parts.netloc != host or parts.path or parts.query or parts.fragment:
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    return scheme, (parts.hostname or "").lower(), port


def same_origin(url: str, base: str) -> bool:
    """Whether ``url`` has the scheme, host and port of ``base`` (default ports filled in)."""
    try:
        return _origin(url) == _origin(base)
    except ValueError:
        return False


def check_url(url: str, base: str, insecure: bool, what: str) -> str:
    """``url`` (absolute, or relative to ``base``) made absolute, if the policy allows it:
    http or https, a host, no userinfo, no fragment, and plain http only to a loopback host or
    with ``insecure``. ``what`` names it in messages (e.g. "the upload Location"). Raises
    RegistryError saying which part is wrong, never quoting the URL (it may hold secrets)."""
    try:
        full = urllib.parse.urljoin(base, url)
        parts = urllib.parse.urlsplit(full)
        port = parts.port
    except ValueError:
        raise RegistryError(f"{what} is not a valid URL; refused") from None
    problem = ""
    if parts.scheme not in ("http", "https"):
        problem = "its scheme is not http or https"
    elif parts.username is not None or parts.password is not None or "@" in parts.netloc:
        problem = "it carries credentials (user:password@)"
    elif not parts.hostname:
        problem = "it names no host"
    elif any(c in full for c in "\r\n\t \x00"):
        problem = "it contains whitespace or control characters"
    elif parts.scheme == "http" and not insecure:
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if not is_loopback(host if port is None else f"{host}:{port}"):
            problem = (
                f"it is plain http to {host}, which is not this machine (only loopback "
                "registries, or insecure = true, may use http)"
            )
    if problem:
        raise RegistryError(f"{what} refused: {problem}")
    return full


def checked_size(value: Any, what: str, limit: int = MAX_BLOB) -> int:
    """``value`` as a size in bytes: an int (not a bool), ``0 <= value <= limit``. Raises
    RegistryError naming ``what`` otherwise (the value is not quoted; it may be anything)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)  # a header's text
    if not isinstance(value, int) or isinstance(value, bool):
        raise RegistryError(f"{what} is not an integer number of bytes")
    if value < 0 or value > limit:
        raise RegistryError(f"{what} is {value} bytes, outside 0..{limit}")
    return value


def declared_length(r: Any, what: str, limit: int) -> int | None:
    """The ``Content-Length`` of response ``r`` checked (None without one, or when the body
    is compressed in transit, where it counts other bytes). Raises RegistryError if it is not
    a size, or above ``limit``."""
    raw = r.headers.get("Content-Length")
    if raw is None or r.headers.get("Content-Encoding", "identity") != "identity":
        return None
    return checked_size(raw.strip(), f"{what}: Content-Length", limit)


def chunks(r: Any, limit: int, what: str, deadline: Deadline) -> Iterator[bytes]:
    """The body of streamed response ``r``, in chunks, at most ``limit + 1`` bytes read from
    the connection: the caller sees the extra byte and refuses. Network failures (reset, cut
    short, timeout) raise NetworkError; the deadline is checked before every read."""
    n = 0
    while n <= limit:
        deadline.timeout(what)
        try:
            # read1: what has arrived (up to CHUNK), not a whole chunk: a registry sending a
            # byte a minute would keep one read() going for weeks without a deadline check
            chunk = r.raw.read1(min(CHUNK, limit + 1 - n), decode_content=True)
        except Exception as e:  # urllib3 wraps socket errors in its own
            msg = f"{what}: network failure after {n} bytes ({reason(e)})"
            raise NetworkError(msg) from None
        if not chunk:
            return
        n += len(chunk)
        yield chunk


def read_document(r: Any, what: str, deadline: Deadline, limit: int = MAX_DOCUMENT) -> bytes:
    """The whole body of streamed response ``r``, at most ``limit`` bytes (default 4 MiB).
    Raises RegistryError if it declares or sends more, NetworkError if the connection
    fails."""
    declared = declared_length(r, what, MAX_BLOB)
    if declared is not None and declared > limit:
        r.close()
        raise RegistryError(f"{what}: the answer declares {declared} bytes, more than {limit}")
    out = bytearray()
    try:
        for chunk in chunks(r, limit, what, deadline):
            out += chunk
    finally:
        r.close()
    if len(out) > limit:
        raise RegistryError(f"{what}: the answer is larger than {limit} bytes; refused")
    return bytes(out)


def reason(e: BaseException) -> str:
    """A short name for a transport exception: its class and the innermost cause."""
    inner: BaseException = e
    for _ in range(10):
        if inner.__context__ is None:
            break
        inner = inner.__context__
    from envbuild.util.redact import printable

    text = str(inner) or type(inner).__name__
    return printable(f"{type(inner).__name__}: {text}" if str(inner) else text, 200)
