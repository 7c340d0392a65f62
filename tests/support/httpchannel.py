"""A channel served over HTTP on 127.0.0.1 that can misbehave: cut package downloads short
(a connection dropped mid-transfer) a given number of times, and require a secret path token
(``/t/<token>/``, as anaconda.org does)."""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Faults:
    truncate: int = 0  # how many .conda downloads to cut off half-way
    token: str | None = None  # required /t/<token>/ path prefix
    basic: tuple[str, str] | None = None  # required HTTP basic auth (user, password)
    requests: list[str] = field(default_factory=list)


class _Handler(SimpleHTTPRequestHandler):
    faults: Faults

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.faults.requests.append(self.path)
        if self.faults.basic is not None:
            expected = base64.b64encode(":".join(self.faults.basic).encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="channel"')
                self.end_headers()
                return
        if self.faults.token is not None:
            prefix = f"/t/{self.faults.token}"
            if not self.path.startswith(prefix + "/"):
                self.send_error(403, "bad token")
                return
            self.path = self.path[len(prefix) :]
        if self.path.endswith(".conda") and self.faults.truncate > 0:
            self.faults.truncate -= 1
            local = Path(self.translate_path(self.path))
            data = local.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@contextlib.contextmanager
def serve(directory: Path, faults: Faults) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (ephemeral port); yields the base URL."""
    handler = type("Handler", (_Handler,), {"faults": faults})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
