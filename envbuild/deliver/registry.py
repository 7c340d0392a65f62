"""An OCI registry client: references, Docker's credentials, the TLS policy, blobs and
manifests by digest, referrers (OCI distribution spec 1.1,
https://github.com/opencontainers/distribution-spec/blob/main/spec.md).

oras-py (https://oras-project.github.io/oras-py/) supplies the parts every registry client
must get right: reading Docker's ``config.json`` (``auths``, ``credsStore``, ``credHelpers``
through the ``docker-credential-*`` programs), the Bearer token request to the
``WWW-Authenticate`` realm, Basic credentials and the requests session they share. Its
high-level ``push``/``pull`` are not used, and the few requests they would make are made here
on its session instead: ``upload_manifest`` re-serialises the JSON (an image pushed that way
gets another digest), ``put_upload`` reads a whole blob into memory, ``download_blob`` checks
no digest, it has no referrers call, its token cache ignores the scope a challenge asks for
(a pull token is re-sent for a push), and its retry decorator sleeps about two minutes on a
registry that is down. Heavy imports (requests, oras) happen in :func:`connect` only.

Docker's conventions (credentials file, CAs, when plain http is allowed) are in
:mod:`envbuild.deliver.registry_auth`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from envbuild.deliver.reference import DOCKER_HUB, Reference, sha256_digest
from envbuild.deliver.registry_auth import (
    docker_config,
    is_loopback,
    read_docker_config,
    tls_fix,
    verify_for,
)
from envbuild.errors import RegistryError

log = logging.getLogger("envbuild")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
_TIMEOUT = 60.0  # seconds without a byte from the registry


@dataclass(slots=True)
class Transfer:
    """Bytes and requests of one client, for reports (a re-publish should send none)."""

    sent: int = 0
    received: int = 0
    requests: int = 0
    blobs_pushed: list[str] = field(default_factory=list)


class Client:
    """Requests to one registry host, authenticated as Docker would; made by :func:`connect`.
    Every method raises RegistryError naming the registry, the step and a fix."""

    def __init__(self, host: str, session: Any, auth: Any, verify: bool | str) -> None:
        self.host, self.session, self.auth, self.verify = host, session, auth, verify
        self.base = f"https://{host}"
        self.transfer = Transfer()
        self._headers: dict[str, str] = {}  # the Authorization that last worked
        self._basic = getattr(auth, "_basic_auth", None)

    # -- plumbing ----------------------------------------------------------------------------
    def _fail(self, step: str, why: str) -> RegistryError:
        return RegistryError(f"registry {self.host}: {step}: {why}")

    def request(
        self,
        method: str,
        path: str,
        step: str,
        *,
        headers: dict[str, str] | None = None,
        body: Callable[[], bytes | IO[bytes]] | None = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200, 201, 202),
    ) -> Any:
        """One request (``path`` below the host, or an absolute URL from a Location header);
        on 401 the challenge is answered once (Basic, or a Bearer token for the scope it
        names) and the request sent again with a fresh ``body()``. Returns the response if
        its status is in ``ok`` (404 is returned too, for the caller to decide)."""
        import requests

        url = path if path.startswith("http") else self.base + path
        for attempt in (1, 2):
            hdrs = {**self._headers, **(headers or {})}
            data = body() if body else None
            try:
                r = self.session.request(
                    method, url, headers=hdrs, data=data,
                    stream=stream, verify=self.verify, timeout=_TIMEOUT, allow_redirects=True,
                )  # fmt: skip
            except requests.exceptions.SSLError as e:
                if data is not None and "CERTIFICATE_VERIFY_FAILED" not in str(e):
                    # the certificate was accepted before; the registry cut the upload
                    raise self._fail(
                        step,
                        f"the registry closed the connection during the upload ({_reason(e)}): "
                        "out of space, or a fault on its side (its log says which)",
                    ) from None
                raise self._fail(
                    step, f"TLS verification failed ({_reason(e)}); {tls_fix(self.host)}"
                ) from None
            except requests.exceptions.RequestException as e:
                raise self._fail(
                    step, f"cannot reach it ({_reason(e)}); is it running and is the address right?"
                ) from None
            finally:
                if hasattr(data, "close"):
                    data.close()  # type: ignore[union-attr]
            self.transfer.requests += 1
            if r.status_code == 401 and attempt == 1 and self._answer(r, step):
                r.close()
                continue
            break
        if r.status_code in ok or r.status_code == 404:
            return r
        if r.status_code == 401 and not self._basic:
            why = (
                f"the registry wants credentials and {docker_config()} has none for "
                f"{self.host} (HTTP 401); log in with `docker login {self.host}`"
            )
            raise self._fail(step, why)
        raise self._fail(step, _http_problem(r, self.host))

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
        if scheme == "bearer":
            h = auth_utils.parse_auth_header(challenge)
            if (
                h.realm
                and not h.realm.startswith("https://")
                and not is_loopback(h.realm.split("/")[2] if "://" in h.realm else h.realm)
            ):
                raise self._fail(step, f"token realm {h.realm} is not https; refused")
            try:
                token = self.auth.request_token(h)
            except Exception as e:  # oras passes requests' errors through
                raise self._fail(step, f"token request to {h.realm} failed: {e}") from None
            if not token:
                return False
            self._headers = {"Authorization": f"Bearer {token}"}
            return True
        return False

    # -- blobs --------------------------------------------------------------------------------
    def has_blob(self, repo: str, digest: str) -> bool:
        r = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", f"check blob {digest[:19]}")
        return bool(r.status_code == 200)

    def push_blob(self, repo: str, digest: str, size: int, opener: Callable[[], IO[bytes]]) -> bool:
        """Upload a blob unless the registry has it; ``opener`` gives its bytes (a fresh
        stream each call). Returns True if it was uploaded. The registry checks the digest
        itself (it refuses a mismatch)."""
        if self.has_blob(repo, digest):
            return False
        step = f"push blob {digest[:19]} to {repo}"
        r = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/", step, headers={"Content-Length": "0"}
        )
        location = r.headers.get("Location", "")
        if r.status_code == 404 or not location:
            raise self._fail(step, f"no upload session (HTTP {r.status_code})")
        if not location.startswith("http"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        r = self.request(
            "PUT", f"{location}{sep}digest={digest}", step, headers=headers, body=opener
        )
        if r.status_code == 404:
            raise self._fail(step, "the upload session vanished (HTTP 404)")
        self.transfer.sent += size
        self.transfer.blobs_pushed.append(digest)
        return True

    def fetch_blob(self, repo: str, digest: str, dest: IO[bytes], size: int | None = None) -> None:
        """Stream blob ``digest`` into ``dest``, hashing as it comes. Raises RegistryError
        naming the expected and the received digest (or size) if they differ: the caller
        must not use what was written."""
        step = f"fetch blob {digest} of {repo}"
        r = self.request("GET", f"/v2/{repo}/blobs/{digest}", step, stream=True)
        if r.status_code == 404:
            raise self._fail(step, "the registry does not have it (HTTP 404)")
        h, n = hashlib.sha256(), 0
        try:
            for chunk in r.iter_content(chunk_size=1 << 20):
                h.update(chunk)
                dest.write(chunk)
                n += len(chunk)
        except OSError:
            raise
        except Exception as e:
            raise self._fail(step, f"the transfer broke after {n} bytes ({_reason(e)})") from None
        self.transfer.received += n
        got = "sha256:" + h.hexdigest()
        if got != digest or (size is not None and n != size):
            msg = (
                f"digest mismatch: expected {digest} ({size if size is not None else '?'} "
                f"bytes), received {got} ({n} bytes); refused, nothing was unpacked"
            )
            raise self._fail(step, msg)

    # -- manifests ----------------------------------------------------------------------------
    def manifest_digest(self, ref: Reference) -> str | None:
        """The digest ``ref`` (tag or digest) names on the registry, or None if it names
        nothing (HEAD only: no manifest body is transferred)."""
        step = f"look up {ref}"
        r = self.request(
            "HEAD", f"/v2/{ref.repository}/manifests/{ref.target}", step,
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )  # fmt: skip
        if r.status_code == 404:
            return None
        digest = r.headers.get("Docker-Content-Digest", "")
        if not digest:  # HEAD without the header (allowed): ask with GET
            return self.get_manifest(ref)[2]
        return str(digest)

    def get_manifest(self, ref: Reference) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of the manifest ``ref`` names. A manifest asked for
        by digest is checked against it. Raises RegistryError if there is none."""
        step = f"fetch manifest {ref}"
        r = self.request(
            "GET", f"/v2/{ref.repository}/manifests/{ref.target}", step,
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )  # fmt: skip
        if r.status_code == 404:
            raise self._fail(step, "no such manifest (HTTP 404); check the name and tag")
        data = bytes(r.content)
        self.transfer.received += len(data)
        digest = sha256_digest(data)
        if ref.digest and digest != ref.digest:
            msg = f"digest mismatch: expected {ref.digest}, received {digest}; refused"
            raise self._fail(step, msg)
        media = r.headers.get("Content-Type", "").split(";")[0] or _media_of(data)
        return data, media, digest

    def put_manifest(self, ref: Reference, data: bytes, media_type: str) -> dict[str, str]:
        """PUT ``data`` (bytes as they are: the digest is theirs) at ``ref`` (a digest or a
        tag). Returns the response headers (``OCI-Subject`` tells the registry processed a
        ``subject``)."""
        step = f"push manifest {ref}" if ref.digest else f"tag {ref}"
        r = self.request(
            "PUT", f"/v2/{ref.repository}/manifests/{ref.target}", step,
            headers={"Content-Type": media_type}, body=lambda: data,
        )  # fmt: skip
        if r.status_code == 404:
            raise self._fail(
                step, "the registry does not know a blob the manifest names (HTTP 404)"
            )
        self.transfer.sent += len(data)
        return dict(r.headers)

    def referrers(self, repo: str, digest: str) -> tuple[list[dict[str, Any]], bool]:
        """The descriptors of manifests whose ``subject`` is ``digest``, and whether the
        registry answered through the referrers API (False: the ``sha256-<hex>`` tag schema,
        for registries without it, such as distribution 2.8)."""
        step = f"list referrers of {digest[:19]}"
        r = self.request(
            "GET", f"/v2/{repo}/referrers/{digest}", step, headers={"Accept": OCI_INDEX}
        )
        if r.status_code == 200 and r.headers.get("Content-Type", "").startswith(OCI_INDEX):
            return list(r.json().get("manifests", [])), True
        tag = Reference(self.host, repo, fallback_tag(digest))
        if self.manifest_digest(tag) is None:
            return [], False
        data, _, _ = self.get_manifest(tag)
        import json

        return list(json.loads(data).get("manifests", [])), False

    def tags(self, repo: str) -> list[str]:
        r = self.request("GET", f"/v2/{repo}/tags/list", f"list tags of {repo}")
        return [] if r.status_code == 404 else list(r.json().get("tags") or [])


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``sha256:<hex>``: ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


def _media_of(data: bytes) -> str:
    import json

    try:
        return str(json.loads(data).get("mediaType", OCI_MANIFEST))
    except ValueError:
        return OCI_MANIFEST


def _reason(e: BaseException) -> str:
    text = str(e)
    m = re.search(r"\(Caused by \w+\((.*)\)\)$", text)
    return (m.group(1) if m else text)[:300]


def _http_problem(r: Any, host: str) -> str:
    detail = ""
    try:
        errors = r.json().get("errors") or []
        detail = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
    except Exception:
        detail = (r.text or "")[:200].strip()
    detail = f" ({detail})" if detail else ""
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


def connect(host: str, insecure: bool = False) -> Client:
    """A :class:`Client` for ``host`` with Docker's credentials for it, after one ``GET
    /v2/`` that decides the scheme: https, verified; http only for a loopback host that does
    not speak TLS, or with ``insecure``. Raises RegistryError if it cannot be reached."""
    import oras.auth
    import oras.container
    import requests
    import urllib3

    hub = host in DOCKER_HUB  # Docker Hub: its API host, and its key in config.json
    host = "registry-1.docker.io" if hub else host
    session = requests.Session()
    session.trust_env = True
    auth = oras.auth.get_auth_backend("token", session, False, tls_verify=True)
    container = oras.container.Container(f"{host}/x")
    container.registry = "index.docker.io" if hub else host  # oras: "localhost" = a namespace
    # only the one file Docker reads (oras's own loader also adds ~/.docker/config.json)
    auth._auth_config = read_docker_config(docker_config())
    auth.load_configs(container)
    verify = verify_for(host, insecure)
    auth._tls_verify = verify
    if insecure:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    client = Client(host, session, auth, verify)
    try:
        client.request("GET", "/v2/", "connect", ok=(200, 401))
    except RegistryError as e:
        plain = "WRONG_VERSION_NUMBER" in str(e).upper()  # it answered TLS with plain http
        if not (insecure or (plain and is_loopback(host))):
            raise
        client.base = f"http://{host}"  # Docker's rule: loopback (or insecure) may be plain http
        auth.prefix = "http"
        client.request("GET", "/v2/", "connect", ok=(200, 401))
    return client
