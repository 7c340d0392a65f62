"""The HTTP layer of the registry client (:class:`envbuild.deliver.registry.Client` builds on
it): one request to a registry, its redirects followed under the URL policy of
:mod:`envbuild.deliver.registry_http`, credentials only to the registry's own origin (and
Basic credentials only to an https or loopback token realm), 401 challenges answered once,
answers read within bounds and the deadline. requests' own redirect handling is off: it
would keep ``Authorization`` on an http->https hop of the same host and apply no TLS policy
to the target (https://requests.readthedocs.io/en/latest/api/#requests.Session.rebuild_auth).

The token request is made here rather than by oras-py's ``request_token``, which reads an
answer of any size and follows redirects with our Basic credentials.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from envbuild.deliver.descriptor import parse_json
from envbuild.deliver.registry_auth import docker_config, tls_fix
from envbuild.deliver.registry_http import (
    MAX_DOCUMENT,
    Deadline,
    NetworkError,
    check_url,
    read_document,
    reason,
    same_origin,
)
from envbuild.errors import RegistryError
from envbuild.util.redact import printable

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_HOPS = 5
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,65536}")  # RFC 6750 b64token


@dataclass(slots=True)
class Transfer:
    """Bytes and requests of one client, for reports (a re-publish should send none)."""

    sent: int = 0
    received: int = 0
    requests: int = 0
    blobs_pushed: list[str] = field(default_factory=list)


class Transport:
    """Requests to one registry host: redirects followed by us under :func:`check_url`,
    credentials only to the registry's origin, 401 challenges answered once (Basic, or a
    Bearer token for the scope asked), bounded reads, the deadline. Raises RegistryError
    naming the registry and the step (NetworkError for the connection)."""

    def __init__(
        self, host: str, session: Any, auth: Any, verify: bool | str,
        insecure: bool = False, deadline: Deadline | None = None,
    ) -> None:  # fmt: skip
        self.host, self.session, self.auth, self.verify = host, session, auth, verify
        self.insecure, self.deadline = insecure, deadline or Deadline()
        self.base = f"https://{host}"
        self.transfer = Transfer()
        self._headers: dict[str, str] = {}  # the Authorization that last worked
        self._basic = getattr(auth, "_basic_auth", None)

    # -- plumbing ----------------------------------------------------------------------------
    def _fail(self, step: str, why: str) -> RegistryError:
        return RegistryError(f"registry {self.host}: {step}: {why}")

    def where(self, step: str) -> str:
        """The prefix of every message about ``step``: ``registry HOST: STEP``."""
        return f"registry {self.host}: {step}"

    def _send(
        self, method: str, url: str, step: str, headers: dict[str, str],
        body: Callable[[], bytes | IO[bytes]] | None, creds: dict[str, str], origin: str,
    ) -> Any:  # fmt: skip
        """Send one request, following redirects ourselves: each hop passes :func:`check_url`
        and gets ``creds`` only on ``origin`` (scheme, host, port). Returns the streamed
        response."""
        import requests

        for _ in range(_MAX_HOPS + 1):
            hdrs = {**(creds if same_origin(url, origin) else {}), **headers}
            data = body() if body else None
            try:
                r = self.session.request(
                    method, url, headers=hdrs, data=data, stream=True, verify=self.verify,
                    timeout=self.deadline.timeout(self.where(step)), allow_redirects=False,
                )  # fmt: skip
            except requests.exceptions.SSLError as e:
                if data is not None and "CERTIFICATE_VERIFY_FAILED" not in str(e):
                    # the certificate was accepted before; the registry cut the upload
                    why = f"the registry closed the connection during the upload ({reason(e)})"
                    raise NetworkError(
                        f"{self.where(step)}: {why}: out of space, or a fault on its side "
                        "(its log says which)"
                    ) from None
                raise self._fail(
                    step, f"TLS verification failed ({reason(e)}); {tls_fix(self.host)}"
                ) from None
            except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as e:
                raise NetworkError(
                    self.where(step)
                    + (
                        f": cannot reach it, network failure ({reason(e)}); is it running and is "
                        "the address right?"
                    )
                ) from None
            except requests.exceptions.RequestException as e:
                raise self._fail(step, f"the request failed ({reason(e)})") from None
            finally:
                if hasattr(data, "close"):
                    data.close()  # type: ignore[union-attr]
            self.transfer.requests += 1
            location = r.headers.get("Location")
            if r.status_code not in _REDIRECTS or location is None:
                return r
            r.close()
            where = self.where(step) + ": the redirect"
            url = check_url(location, url, self.insecure, where)
            if r.status_code == 303 or (r.status_code in (301, 302) and method == "POST"):
                method, body = "GET", None
        raise self._fail(step, f"more than {_MAX_HOPS} redirects; refused")

    def request(
        self,
        method: str,
        path: str,
        step: str,
        *,
        headers: dict[str, str] | None = None,
        body: Callable[[], bytes | IO[bytes]] | None = None,
        ok: tuple[int, ...] = (200, 201, 202),
    ) -> Any:
        """One request (``path`` below the host, or an absolute URL from a Location header,
        which must pass :func:`check_url`); on 401 from the registry itself the challenge is
        answered once (Basic, or a Bearer token for the scope it names) and the request sent
        again with a fresh ``body()``. Returns the streamed response if its status is in
        ``ok`` (404 is returned too, for the caller to decide); the caller reads or closes
        it."""
        url = check_url(path, self.base, self.insecure, f"{self.where(step)}: the URL")
        for attempt in (1, 2):
            r = self._send(method, url, step, headers or {}, body, self._headers, self.base)
            if r.status_code == 401 and attempt == 1 and same_origin(r.url or url, self.base):
                answered = self._answer(r, step)
                if answered:
                    r.close()
                    continue
            break
        if r.status_code in ok or r.status_code == 404:
            return r
        if r.status_code == 401 and not self._basic:
            r.close()
            why = (
                f"the registry wants credentials and {docker_config()} has none for "
                f"{self.host} (HTTP 401); log in with `docker login {self.host}`"
            )
            raise self._fail(step, why)
        raise self._fail(step, http_problem(r, self.host, self.deadline))

    def read(self, r: Any, step: str, limit: int = MAX_DOCUMENT) -> bytes:
        """The body of ``r``, at most ``limit`` bytes (4 MiB): see :func:`read_document`."""
        data = read_document(r, self.where(step), self.deadline, limit)
        self.transfer.received += len(data)
        return data

    def _answer(self, r: Any, step: str) -> bool:
        """Set the Authorization header asked for by the challenge of ``r``; False if there
        is nothing to answer with."""
        import oras.auth.utils as auth_utils

        challenge = r.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if not self._basic:
                return False
            self._headers = {"Authorization": f"Basic {self._basic}"}
            return True
        if scheme != "bearer":
            return False
        h = auth_utils.parse_auth_header(challenge)
        where = f"{self.where(step)}: the token realm"
        # a realm gets our Basic credentials: https, or this machine; insecure does not relax it
        realm = check_url(str(h.realm or ""), self.base, False, where)
        params = {k: v for k, v in (("service", h.service), ("scope", h.scope)) if v}
        url = realm + ("&" if urllib.parse.urlsplit(realm).query else "?")
        url += urllib.parse.urlencode(params)
        creds = {"Authorization": f"Basic {self._basic}"} if self._basic else {}
        t = self._send("GET", url, step + " (token)", {"Accept": "application/json"}, None,
                       creds, realm)  # fmt: skip
        if t.status_code != 200:
            t.close()
            return False
        answer = parse_json(self.read(t, step + " (token)"), where)
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise RegistryError(f"{where}: the answer holds no usable token; refused")
        self._headers = {"Authorization": f"Bearer {token}"}
        return True


def http_problem(r: Any, host: str, deadline: Deadline) -> str:
    """What an error answer says, from at most 64 KiB of its body, escaped and cut short."""
    detail = ""
    try:
        body = read_document(r, f"registry {host}: the error answer", deadline, 1 << 16)
    except RegistryError:
        body = b""
    try:
        errors = parse_json(body, "").get("errors") or []
        detail = "; ".join(
            f"{e.get('code', '')}: {e.get('message', '')}"
            for e in errors[:5]
            if isinstance(e, dict)
        )
    except (RegistryError, TypeError):
        detail = body[:200].decode("utf-8", "replace").strip()
    detail = f" ({printable(detail, 200)})" if detail else ""
    if r.status_code == 401:
        return (
            f"credentials refused (HTTP 401){detail}; log in with `docker login {host}` "
            f"(envbuild reads {docker_config()}, credential helpers included)"
        )
    if r.status_code == 403:
        return f"permission denied (HTTP 403){detail}; the account may not push or pull here"
    if r.status_code in (413, 507) or "space" in detail.lower():
        return f"the registry is out of space (HTTP {r.status_code}){detail}"
    if r.status_code >= 500:
        return (
            f"the registry failed (HTTP {r.status_code}){detail}: out of space, or a fault on "
            "its side (its log says which)"
        )
    return f"HTTP {r.status_code}{detail}"
