"""A small in-memory OCI registry on loopback, for the answers a real registry won't give (a
lying digest, an endless body, a Location on another host). It speaks just enough of the
distribution API for envbuild's publish and pull; ``override`` lets a test answer any
request itself, and every request is recorded with its headers."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Handler = http.server.BaseHTTPRequestHandler


@dataclass
class Seen:
    """One request as it arrived: method, path (with query), headers."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeRegistry:
    """State of the fake: ``blobs`` (digest -> bytes, shareable between fakes),
    ``manifests`` ((repo, tag or digest) -> (bytes, media type)), ``user`` (Basic credentials
    required when set), ``override`` (a test's handler: return True when it answered),
    ``rewrite`` (edits the headers of the fake's own answers)."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    user: tuple[str, str] | None = None
    override: Callable[[Handler, str], bool] | None = None
    rewrite: Callable[[Handler, int, dict[str, str]], None] | None = None
    seen: list[Seen] = field(default_factory=list)
    host: str = ""

    def authorized(self, h: Handler) -> bool:
        if self.user is None:
            return True
        expected = "Basic " + base64.b64encode(":".join(self.user).encode()).decode()
        return h.headers.get("Authorization") == expected


def send(h: Handler, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bool:
    """Answer ``h`` with ``status``, ``headers`` and ``body`` (Content-Length set unless
    given). Returns True (answered: what an ``override`` returns)."""
    h.send_response(status)
    headers = dict(headers or {})
    fake = getattr(h, "fake", None)
    if fake is not None and fake.rewrite is not None:
        fake.rewrite(h, status, headers)
    headers.setdefault("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    if h.command != "HEAD" and body:
        h.wfile.write(body)
    return True


def endless(h: Handler, headers: dict[str, str] | None = None, total: int = 64 << 20) -> bool:
    """Answer 200 with a body that does not end before ``total`` bytes (64 MiB: endless to a
    client that reads no further than it should), or until the client hangs up."""
    h.send_response(200)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Connection", "close")
    h.end_headers()
    h.close_connection = True
    chunk = b"x" * 65536
    try:
        for _ in range(total // len(chunk)):
            h.wfile.write(chunk)
    except OSError:
        pass
    return True


def _handle(fake: FakeRegistry, h: Handler) -> None:
    method = h.command
    length = int(h.headers.get("Content-Length") or 0)
    body = h.rfile.read(length) if length else b""
    fake.seen.append(Seen(method, h.path, dict(h.headers)))
    if fake.override is not None and fake.override(h, method):
        return
    url = urllib.parse.urlsplit(h.path)
    query = urllib.parse.parse_qs(url.query)
    parts = url.path.split("/")
    if not fake.authorized(h):
        send(h, 401, b"{}", {"WWW-Authenticate": 'Basic realm="fake"'})
        return
    if url.path == "/v2/":
        send(h, 200, b"{}")
        return
    kind = next((i for i, p in enumerate(parts) if p in ("blobs", "manifests", "tags")), -1)
    repo, rest = "/".join(parts[2:kind]), parts[kind + 1 :]
    if parts[kind] == "blobs" and rest[0] == "uploads":
        if method == "POST":
            send(h, 202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}"})
            return
        digest = query["digest"][0]
        fake.blobs[digest] = body
        send(h, 201, headers={"Location": f"/v2/{repo}/blobs/{digest}",
                              "Docker-Content-Digest": digest})  # fmt: skip
    elif parts[kind] == "blobs":
        data = fake.blobs.get(rest[0])
        if data is None:
            send(h, 404, b'{"errors": []}')
        else:
            send(h, 200, data, {"Docker-Content-Digest": rest[0]})
    elif parts[kind] == "manifests" and method == "PUT":
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        media = h.headers.get("Content-Type", "")
        fake.manifests[(repo, rest[0])] = fake.manifests[(repo, digest)] = (body, media)
        send(h, 201, headers={"Location": f"/v2/{repo}/manifests/{digest}",
                              "Docker-Content-Digest": digest})  # fmt: skip
    elif parts[kind] == "manifests":
        found = fake.manifests.get((repo, rest[0]))
        if found is None:
            send(h, 404, b'{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}')
            return
        digest = "sha256:" + hashlib.sha256(found[0]).hexdigest()
        send(h, 200, found[0], {"Content-Type": found[1], "Docker-Content-Digest": digest})
    else:
        send(h, 404, b"{}")


@contextmanager
def fake_registry(state: FakeRegistry | None = None) -> Iterator[FakeRegistry]:
    """Serve ``state`` (a new FakeRegistry by default) on ``127.0.0.1:<free port>`` (plain
    http) until the block ends; its ``host`` is set."""
    fake = state or FakeRegistry()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except OSError:
                self.close_connection = True

        def do_GET(self) -> None:
            self.fake = fake
            _handle(fake, self)

        do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    fake.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
