"""Real OCI registries for the tests: Debian's ``docker-registry`` (distribution 2.8) started
on a free loopback port, plain http or with TLS from a CA the test makes and htpasswd users;
and tiny OCI image layouts written by hand (no engine needed)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    """A running registry: ``host`` (``127.0.0.1:PORT``), its storage ``root``, and for a
    TLS one its CA's directory (Docker's certs.d layout) and a user's credentials."""

    host: str
    root: Path
    certs_d: Path | None = None
    user: tuple[str, str] | None = None

    def blob_file(self, digest: str) -> Path:
        hexpart = digest.split(":")[1]
        return self.root / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def tags(self, repo: str) -> list[str]:
        """The tags of ``repo`` as skopeo lists them ([] for a repository with no tag yet)."""
        try:
            return list(
                json.loads(self.skopeo("list-tags", f"docker://{self.host}/{repo}"))["Tags"]
            )
        except AssertionError as e:
            assert "404" in str(e)
            return []

    def skopeo(self, *args: str) -> str:
        """``skopeo ARGS`` with this registry's TLS and credentials; its stdout."""
        opts = (
            ["--tls-verify=false"]
            if self.certs_d is None
            else ["--cert-dir", str(self.certs_d / self.host)]
        )
        if self.user:
            opts += ["--creds", f"{self.user[0]}:{self.user[1]}"]
        cmd, *rest = args
        r = subprocess.run(
            ["skopeo", cmd, *opts, *rest], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, r.stderr
        return r.stdout


def _tls(tmp: Path, host: str) -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it; returns certs.d with
    ``<host>/ca.crt``."""
    ssl = ["openssl"]
    run = lambda *a: subprocess.run([*ssl, *a], cwd=tmp, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=envbuild test CA",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr")  # fmt: skip
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    certs_d = tmp / "certs.d"
    (certs_d / host).mkdir(parents=True)
    shutil.copy(tmp / "ca.crt", certs_d / host / "ca.crt")
    return certs_d


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A token service as the distribution token spec describes
    (https://distribution.github.io/distribution/spec/auth/token/): Basic credentials in,
    an RS256 JWT granting exactly the scope asked for out, signed with ``openssl`` by a key
    whose certificate the registry trusts (``x5c``). Records the scopes asked for."""

    def __init__(self, tmp: Path, user: tuple[str, str]) -> None:
        self.tmp, self.user = tmp, user
        self.scopes: list[str] = []
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=envbuild token issuer", "-keyout", str(tmp / "token.key"),
                        "-out", str(tmp / "token.crt")], check=True, capture_output=True)  # fmt: skip
        der = subprocess.run(["openssl", "x509", "-in", str(tmp / "token.crt"), "-outform", "DER"],
                             check=True, capture_output=True).stdout  # fmt: skip
        self.x5c = base64.b64encode(der).decode()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                expected = "Basic " + base64.b64encode(":".join(server.user).encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                scope = query.get("scope", [""])[0]
                server.scopes.append(scope)
                body = json.dumps({"token": server.token(query["service"][0], scope)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, service: str, scope: str) -> str:
        access = []
        if scope.startswith("repository:"):
            _, name, actions = scope.split(":")
            access = [{"type": "repository", "name": name, "actions": actions.split(",")}]
        now = int(time.time())
        claims = {"iss": "envbuild-test-issuer", "sub": self.user[0], "aud": service,
                  "exp": now + 600, "nbf": now - 60, "iat": now - 60, "jti": str(now),
                  "access": access}  # fmt: skip
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.tmp / "token.key")],
                             input=signing.encode(), check=True, capture_output=True).stdout  # fmt: skip
        return f"{signing}.{_b64(sig)}"

    def close(self) -> None:
        self.httpd.shutdown()


@contextmanager
def running_registry(
    tmp: Path, tls_auth: bool = False, token: TokenServer | None = None, storage: int = 0
) -> Iterator[Registry]:
    """Start ``docker-registry serve`` on a free loopback port; stop it on exit. ``tls_auth``:
    TLS from a test CA and an htpasswd user; ``token``: token authentication from it."""
    if shutil.which("docker-registry") is None:
        pytest.skip("no docker-registry here (scripts/services.sh installs Debian's)")
    port = _free_port()
    host = f"127.0.0.1:{port}"
    tmp.mkdir(parents=True, exist_ok=True)
    reg = Registry(host, tmp / "data")
    if storage:  # its storage on a tmpfs of that many bytes (to run out of space)
        reg.root.mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", f"size={storage}", "tmpfs", str(reg.root)]
        if subprocess.run(mount, capture_output=True).returncode:
            pytest.skip("cannot mount a small tmpfs here (needs root)")
    config = [
        "version: 0.1",
        "log: {level: error}",
        "storage:",
        f"  filesystem: {{rootdirectory: {reg.root}}}",
        "  delete: {enabled: true}",
        "http:",
        f"  addr: {host}",
    ]
    if tls_auth:
        reg.certs_d = _tls(tmp, host)
        reg.user = ("alice", "s3cret-pass")
        subprocess.run(["htpasswd", "-Bbc", str(tmp / "htpasswd"), *reg.user], check=True,
                       capture_output=True)  # fmt: skip
        config += [f"  tls: {{certificate: {tmp / 'server.crt'}, key: {tmp / 'server.key'}}}",
                   "auth:", f"  htpasswd: {{realm: envbuild-test, path: {tmp / 'htpasswd'}}}"]  # fmt: skip
    if token is not None:
        reg.user = token.user
        config += ["auth:", "  token:", f"    realm: {token.realm}", "    service: envbuild-test",
                   "    issuer: envbuild-test-issuer", f"    rootcertbundle: {tmp / 'token.crt'}"]  # fmt: skip
    (tmp / "config.yml").write_text("\n".join(config) + "\n")
    log = (tmp / "registry.log").open("w")
    proc = subprocess.Popen(["docker-registry", "serve", str(tmp / "config.yml")], stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.fail(f"docker-registry exited: {(tmp / 'registry.log').read_text()}")
            time.sleep(0.05)  # polling: docker-registry opening its port
        yield reg
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        if storage:
            subprocess.run(["umount", str(reg.root)], check=False)


def _blob(root: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_layout(
    root: Path,
    text: str = "hello",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> str:
    """A one-layer OCI image layout at ``root`` (a file ``hello.txt`` holding ``text``; its
    manifest annotated with ``annotations``); returns its manifest digest."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(text.encode())
        tf.addfile(info, io.BytesIO(text.encode()))
    layer_gz = gzip.compress(raw.getvalue(), mtime=0)
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(root, layer_gz)}
    config_doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": labels or {}},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()],
        },
    }
    config = {"mediaType": "application/vnd.oci.image.config.v1+json",
              **_blob(root, json.dumps(config_doc).encode())}  # fmt: skip
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config, "layers": [layer]}  # fmt: skip
    if annotations:
        manifest["annotations"] = annotations
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            **_blob(root, json.dumps(manifest).encode())}  # fmt: skip
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return str(desc["digest"])


def layout_archive(root: Path, archive: Path) -> None:
    """Tar the layout directory ``root`` into ``archive`` (an ``oci-archive``)."""
    with tarfile.open(archive, "w") as tf:
        for p in sorted(root.rglob("*")):
            tf.add(p, arcname=str(p.relative_to(root)), recursive=False)


def pins(tarball: Path, imports: tuple[str, ...] = ()) -> dict[str, str]:
    """The annotations `doit docker` gives an image of ``tarball``: what pull installs."""
    from envbuild.ship import oci_image
    from envbuild.ship.pack import unpacked_size
    from envbuild.util.fs import file_sha256

    try:
        unpacked = unpacked_size(tarball)
    except Exception:  # not a tarball at all (the junk artifact)
        unpacked = 0
    return {
        oci_image.ANN_ENV_DIGEST: "sha256:" + file_sha256(tarball),
        oci_image.ANN_ENV_SIZE: str(tarball.stat().st_size),
        oci_image.ANN_ENV_UNPACKED: str(unpacked),
        oci_image.LABEL_IMPORTS: ",".join(imports),
    }


def forge_environment(
    reg: Registry, repo: str, image: str, tarball: Path, ann: dict[str, str]
) -> str:
    """Push an environment artifact of ``tarball`` referring to ``image`` and append it to
    the image's referrers tag, as anyone who can push could. Returns its digest."""
    from envbuild.deliver.publish import canonical
    from envbuild.deliver.registry import connect, fallback_tag
    from envbuild.util.fs import file_sha256
    from envbuild.util.mediatypes import ENV_ARTIFACT, OCI_INDEX, OCI_MANIFEST
    from envbuild.util.reference import parse_reference, sha256_digest

    client = connect(reg.host)
    ref = parse_reference(f"{reg.host}/{repo}:x")
    blob = "sha256:" + file_sha256(tarball)
    client.push_blob(repo, blob, tarball.stat().st_size, lambda: tarball.open("rb"))
    client.push_blob(repo, sha256_digest(b"{}"), 2, lambda: io.BytesIO(b"{}"))
    data, media, _ = client.get_manifest(ref.with_target(image))
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ENV_ARTIFACT,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.conda-pack.tar+zstd", "digest": blob, "size": tarball.stat().st_size}],
        "subject": {"mediaType": media, "digest": image, "size": len(data)},
        "annotations": ann,
    }  # fmt: skip
    raw = canonical(manifest)
    client.put_manifest(ref.with_target(sha256_digest(raw)), raw, OCI_MANIFEST)
    have, _ = client.referrers(repo, image)
    desc = {"mediaType": OCI_MANIFEST, "digest": sha256_digest(raw), "size": len(raw),
            "artifactType": ENV_ARTIFACT, "annotations": ann}  # fmt: skip
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*have, desc]}
    client.put_manifest(ref.with_target(fallback_tag(image)), canonical(index), OCI_INDEX)
    return sha256_digest(raw)
