"""An OCI registry client: references, Docker's credentials, the TLS policy, blobs and
manifests by digest, referrers (OCI distribution spec 1.1,
https://github.com/opencontainers/distribution-spec/blob/main/spec.md).

oras-py (https://oras-project.github.io/oras-py/) supplies the parts every registry client
must get right: reading Docker's ``config.json`` (``auths``, ``credsStore``, ``credHelpers``
through the ``docker-credential-*`` programs), parsing the ``WWW-Authenticate`` challenge,
Basic credentials and the requests session. Its high-level ``push``/``pull`` are not used,
and the few requests they would make are made here on its session instead:
``upload_manifest`` re-serialises the JSON (an image pushed that way gets another digest),
``put_upload`` reads a whole blob into memory, ``download_blob`` checks no digest, it has no
referrers call, its token cache ignores the scope a challenge asks for (a pull token is
re-sent for a push), its token request reads an answer of any size, and its retry decorator
sleeps about two minutes on a registry that is down. Heavy imports (requests, oras) happen in
:func:`connect` only.

Nothing the registry says is believed unchecked (:mod:`envbuild.deliver.registry_http`:
URL policy, credentials by origin, bounded reads, one deadline;
:mod:`envbuild.deliver.descriptor`: documents). Docker's conventions (credentials file, CAs,
when plain http is allowed) are in :mod:`envbuild.deliver.registry_auth`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import IO, Any

from envbuild.deliver.descriptor import Descriptor, Manifest, digest_of, manifest, parse_json
from envbuild.deliver.registry_auth import (
    docker_config,
    is_loopback,
    read_docker_config,
    verify_for,
)
from envbuild.deliver.registry_http import (
    MAX_DOCUMENT,
    Deadline,
    NetworkError,
    check_url,
    checked_size,
    chunks,
    declared_length,
)
from envbuild.deliver.registry_transport import Transfer, Transport
from envbuild.errors import RegistryError
from envbuild.util.mediatypes import MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST
from envbuild.util.redact import printable
from envbuild.util.reference import DOCKER_HUB, Reference, sha256_digest

__all__ = ["Client", "Deadline", "NetworkError", "Transfer", "connect", "is_loopback"]

log = logging.getLogger("envbuild")

_MEDIA = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]{0,126}/[A-Za-z0-9][\w!#$&^.+-]{0,126}", re.ASCII)


class Client(Transport):
    """Requests to one registry host, authenticated as Docker would; made by :func:`connect`.
    Every method raises RegistryError naming the registry, the step and a fix (NetworkError,
    a RegistryError, for a connection that failed mid-transfer or the deadline)."""

    # -- blobs --------------------------------------------------------------------------------
    def has_blob(self, repo: str, digest: str, size: int | None = None) -> bool:
        """Whether the registry has blob ``digest`` (of ``size`` bytes, if given: a
        Content-Length that differs is an error)."""
        step = f"check blob {digest[:19]}"
        r = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", step)
        r.close()
        if r.status_code != 200:
            return False
        have = declared_length(r, self.where(step), 1 << 62)
        if size is not None and have is not None and have != size:
            raise self._fail(step, f"the registry says {have} bytes, the blob has {size}")
        return True

    def push_blob(self, repo: str, digest: str, size: int, opener: Callable[[], IO[bytes]]) -> bool:
        """Upload a blob unless the registry has it; ``opener`` gives its bytes (a fresh
        stream each call). Returns True if it was uploaded. The registry's answers are
        checked: a ``Docker-Content-Digest`` or ``Location`` naming another digest, or a blob
        that is not there (or has another size) afterwards, raise RegistryError."""
        if self.has_blob(repo, digest, size):
            return False
        step = f"push blob {digest[:19]} to {repo}"
        r = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/", step, headers={"Content-Length": "0"}
        )
        r.close()
        location = r.headers.get("Location", "")
        if r.status_code == 404 or not location:
            raise self._fail(step, f"no upload session (HTTP {r.status_code})")
        location = check_url(location, self.base, self.insecure, f"{self.where(step)}: Location")
        self._check_location(location, digest, step)
        sep = "&" if urllib.parse.urlsplit(location).query else "?"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        r = self.request(
            "PUT", f"{location}{sep}digest={digest}", step, headers=headers, body=opener
        )
        r.close()
        if r.status_code == 404:
            raise self._fail(step, "the upload session vanished (HTTP 404)")
        self._check_answer(r, digest, step)
        self.transfer.sent += size
        if not self.has_blob(repo, digest, size):
            raise self._fail(step, "the registry accepted the upload but does not have the blob")
        self.transfer.blobs_pushed.append(digest)
        return True

    def _check_answer(self, r: Any, digest: str, step: str) -> None:
        """A ``Docker-Content-Digest`` or a ``Location`` naming another digest is an error."""
        said = r.headers.get("Docker-Content-Digest")
        if said is not None and said != digest:
            why = f"the registry answered Docker-Content-Digest {printable(said, 80)}, ours is"
            raise self._fail(step, f"{why} {digest}; refused")
        if r.headers.get("Location"):
            self._check_location(r.headers["Location"], digest, step)

    def _check_location(self, location: str, digest: str, step: str) -> None:
        parts = urllib.parse.urlsplit(location)
        named = urllib.parse.parse_qs(parts.query).get("digest", [])
        last = urllib.parse.unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
        named += [last] if last.startswith("sha256:") or "/blobs/sha" in parts.path else []
        for d in named:
            if d != digest:
                why = f"the registry's Location names digest {printable(d, 80)}, ours is {digest}"
                raise self._fail(step, why + "; refused")

    def fetch_blob(self, repo: str, digest: str, dest: IO[bytes], size: int | None = None) -> None:
        """Stream blob ``digest`` into ``dest``, hashing as it comes, reading at most ``size``
        bytes plus one (``size`` None: a document, at most 4 MiB). Raises RegistryError
        naming the expected and the received digest (or size) if they differ, NetworkError
        (a RegistryError) if the connection fails: the caller must not use what was written.
        OSError comes only from writing ``dest``."""
        step = f"fetch blob {digest} of {repo}"
        where = self.where(step)
        limit = MAX_DOCUMENT if size is None else checked_size(size, f"{where}: the size")
        r = self.request("GET", f"/v2/{repo}/blobs/{digest}", step)
        if r.status_code == 404:
            r.close()
            raise self._fail(step, "the registry does not have it (HTTP 404)")
        h, n = hashlib.sha256(), 0
        try:
            declared = declared_length(r, where, 1 << 62)
            if declared is not None and (declared > limit if size is None else declared != size):
                raise self._fail(step, f"the registry declares {declared} bytes, expected {limit}")
            for chunk in chunks(r, limit, where, self.deadline):
                n += len(chunk)
                if n > limit:
                    break
                h.update(chunk)
                dest.write(chunk)  # OSError: the disk, for the caller
        finally:
            r.close()
            self.transfer.received += n
        got = "sha256:" + h.hexdigest()
        if n > limit:
            msg = f"the registry sent more than the {limit} bytes declared; refused, nothing used"
            raise self._fail(step, msg)
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
        r.close()
        if r.status_code == 404:
            return None
        said = r.headers.get("Docker-Content-Digest", "")
        if not said:  # HEAD without the header (allowed): ask with GET
            return self.get_manifest(ref)[2]
        digest = digest_of(said, self.where(step) + ": Docker-Content-Digest")
        if ref.digest and digest != ref.digest:
            raise self._fail(step, f"the registry names {digest} for {ref.digest}; refused")
        return digest

    def get_manifest(self, ref: Reference) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of the manifest ``ref`` names, at most 4 MiB. A
        manifest asked for by digest is checked against it. Raises RegistryError if there is
        none."""
        step = f"fetch manifest {ref}"
        r = self.request(
            "GET", f"/v2/{ref.repository}/manifests/{ref.target}", step,
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )  # fmt: skip
        if r.status_code == 404:
            r.close()
            raise self._fail(step, "no such manifest (HTTP 404); check the name and tag")
        data = self.read(r, step)
        digest = sha256_digest(data)
        if ref.digest and digest != ref.digest:
            msg = f"digest mismatch: expected {ref.digest}, received {digest}; refused"
            raise self._fail(step, msg)
        media = r.headers.get("Content-Type", "").split(";")[0].strip()
        return data, media if _MEDIA.fullmatch(media) else _media_of(data), digest

    def manifest(self, ref: Reference) -> tuple[Manifest, bytes, str]:
        """(the checked document, its raw bytes, its digest) of the manifest or index ``ref``
        names (:func:`envbuild.deliver.descriptor.manifest`). Raises RegistryError."""
        data, _, digest = self.get_manifest(ref)
        return manifest(data, self.where(f"fetch manifest {ref}")), data, digest

    def put_manifest(self, ref: Reference, data: bytes, media_type: str) -> dict[str, str]:
        """PUT ``data`` (bytes as they are: the digest is theirs) at ``ref`` (a digest or a
        tag), then read it back: by digest (same bytes), or the tag's digest (ours). Raises
        RegistryError if the registry answers or holds another digest. Returns the response
        headers (``OCI-Subject`` tells the registry processed a ``subject``)."""
        step = f"push manifest {ref}" if ref.digest else f"tag {ref}"
        ours = sha256_digest(data)
        r = self.request(
            "PUT", f"/v2/{ref.repository}/manifests/{ref.target}", step,
            headers={"Content-Type": media_type}, body=lambda: data,
        )  # fmt: skip
        r.close()
        if r.status_code == 404:
            raise self._fail(
                step, "the registry does not know a blob the manifest names (HTTP 404)"
            )
        self._check_answer(r, ours, step)
        self.transfer.sent += len(data)
        if ref.digest:
            self.get_manifest(ref)  # checked against the digest: the same bytes
        elif (held := self.manifest_digest(ref)) != ours:
            raise self._fail(step, f"after the push the tag names {held}, not {ours}; refused")
        return dict(r.headers)

    def referrer_descriptors(self, repo: str, digest: str) -> tuple[tuple[Descriptor, ...], bool]:
        """The checked descriptors of manifests whose ``subject`` is ``digest``, and whether
        the registry answered through the referrers API (False: the ``sha256-<hex>`` tag
        schema, for registries without it, such as distribution 2.8)."""
        step = f"list referrers of {digest[:19]}"
        r = self.request(
            "GET", f"/v2/{repo}/referrers/{digest}", step, headers={"Accept": OCI_INDEX}
        )
        if r.status_code == 200 and r.headers.get("Content-Type", "").startswith(OCI_INDEX):
            index = manifest(parse_json(self.read(r, step), self.where(step)), self.where(step))
            return index.manifests, True
        r.close()
        tag = Reference(self.host, repo, fallback_tag(digest))
        if self.manifest_digest(tag) is None:
            return (), False
        return self.manifest(tag)[0].manifests, False

    def referrers(self, repo: str, digest: str) -> tuple[list[dict[str, Any]], bool]:
        """:meth:`referrer_descriptors` as OCI JSON objects (each checked)."""
        found, api = self.referrer_descriptors(repo, digest)
        return [d.to_json() for d in found], api

    def tags(self, repo: str) -> list[str]:
        """The tags of ``repo`` (strings, checked)."""
        step = f"list tags of {repo}"
        r = self.request("GET", f"/v2/{repo}/tags/list", step)
        if r.status_code == 404:
            r.close()
            return []
        tags = parse_json(self.read(r, step), self.where(step)).get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise self._fail(step, "'tags' is not a list of strings")
        return list(tags)


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``sha256:<hex>``: ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


def _media_of(data: bytes) -> str:
    """The ``mediaType`` a manifest names (when the Content-Type header is unusable)."""
    import json

    try:
        media = json.loads(data).get("mediaType", OCI_MANIFEST)
    except (ValueError, AttributeError, RecursionError):
        return OCI_MANIFEST
    return media if isinstance(media, str) and _MEDIA.fullmatch(media) else OCI_MANIFEST


def connect(host: str, insecure: bool = False, deadline: Deadline | None = None) -> Client:
    """A :class:`Client` for ``host`` with Docker's credentials for it, after one ``GET
    /v2/`` that decides the scheme: https, verified; http only for a loopback host that does
    not speak TLS, or with ``insecure``. ``deadline`` bounds everything the client does
    (default: none; each read still waits at most a minute). Raises RegistryError if it
    cannot be reached."""
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
    client = Client(host, session, auth, verify, insecure, deadline)
    try:
        client.request("GET", "/v2/", "connect", ok=(200, 401)).close()
    except RegistryError as e:
        plain = "WRONG_VERSION_NUMBER" in str(e).upper()  # it answered TLS with plain http
        if not (insecure or (plain and is_loopback(host))):
            raise
        client.base = f"http://{host}"  # Docker's rule: loopback (or insecure) may be plain http
        auth.prefix = "http"
        client.request("GET", "/v2/", "connect", ok=(200, 401)).close()
    return client
