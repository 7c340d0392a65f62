"""A registry that lies, stalls or floods, on loopback (tests/fakeregistry.py): every answer
is bounded and checked, credentials go only to the registry's own origin, publish believes
nothing it is told, and no secret or escape sequence reaches a message."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envbuild.deliver.descriptor import Descriptor, descriptor, manifest, parse_json
from envbuild.deliver.publish import Release, publish
from envbuild.deliver.registry import connect
from envbuild.deliver.registry_http import (
    MAX_DOCUMENT,
    Deadline,
    NetworkError,
    check_url,
    is_loopback,
)
from envbuild.deliver.tags import TagMoveError
from envbuild.errors import ConfigError, RegistryError
from envbuild.util.mediatypes import OCI_INDEX, OCI_MANIFEST
from envbuild.util.redact import printable
from envbuild.util.reference import parse_reference

from ..support.fakeregistry import FakeRegistry, Handler, endless, fake_registry, send
from ..support.ociregistry import write_layout

LOCK = "0123456789ab" + "c" * 52
D1 = "sha256:" + "1" * 64
ZEROS = "sha256:" + "0" * 64


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with fake_registry() as f:
        yield f


def _blob(fake: FakeRegistry, data: bytes) -> str:
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    fake.blobs[digest] = data
    return digest


def _image(tmp_path: Path, text: str = "hostile") -> Release:
    write_layout(tmp_path / "layout", text=text)
    return Release("tiny", "linux-64", LOCK, tmp_path / "layout")


# -- bounds --------------------------------------------------------------------------------
def test_an_endless_manifest_is_refused_past_4_mib(fake: FakeRegistry) -> None:
    fake.override = lambda h, m: "/manifests/" in h.path and endless(h)
    client = connect(fake.host)
    with pytest.raises(
        RegistryError, match=rf"registry {fake.host}: fetch manifest .*larger than {MAX_DOCUMENT}"
    ):
        client.get_manifest(parse_reference(f"{fake.host}/team/x:current"))


def test_a_declared_length_above_the_limit_is_refused_unread(fake: FakeRegistry) -> None:
    def big(h: Handler, method: str) -> bool:
        if "/manifests/" not in h.path:
            return False
        send(h, 200, b"{}", {"Content-Length": str(1 << 40)})
        return True

    fake.override = big
    with pytest.raises(RegistryError, match=r"declares 1099511627776 bytes, more than 4194304"):
        connect(fake.host).get_manifest(parse_reference(f"{fake.host}/team/x:current"))


def test_an_endless_blob_is_read_no_further_than_declared(fake: FakeRegistry) -> None:
    fake.override = lambda h, m: "/blobs/" in h.path and endless(h)
    client, buf = connect(fake.host), io.BytesIO()
    with pytest.raises(RegistryError, match=r"sent more than the 1000 bytes declared"):
        client.fetch_blob("team/x", D1, buf, 1000)
    assert len(buf.getvalue()) <= 1000 and client.transfer.received == 1001


def test_a_content_length_other_than_the_size_is_refused_first(fake: FakeRegistry) -> None:
    digest = _blob(fake, b"a" * 5000)
    buf = io.BytesIO()
    with pytest.raises(RegistryError, match=r"declares 5000 bytes, expected 1000"):
        connect(fake.host).fetch_blob("team/x", digest, buf, 1000)
    assert buf.getvalue() == b""


@pytest.mark.parametrize("size", ["lots", -1, 1 << 60, True])
def test_sizes_from_a_registry_are_checked(fake: FakeRegistry, size: object) -> None:
    with pytest.raises(RegistryError, match="size"):
        connect(fake.host).fetch_blob("team/x", D1, io.BytesIO(), size)  # type: ignore[arg-type]


def test_one_deadline_for_the_whole_transfer(fake: FakeRegistry) -> None:
    """A clock that moves one second per read: a 4 MiB blob takes 64 reads, the deadline
    is 30 seconds away; no sleeping."""
    digest = _blob(fake, b"b" * (4 << 20))
    ticks = iter(range(10**6))
    client = connect(fake.host, deadline=Deadline.after(30, clock=lambda: float(next(ticks))))
    with pytest.raises(NetworkError, match=rf"registry {fake.host}: fetch blob .*deadline"):
        client.fetch_blob("team/x", digest, io.BytesIO(), 4 << 20)


def test_a_slow_drip_within_one_read_meets_the_deadline(fake: FakeRegistry) -> None:
    """A registry sending one byte each time the (injected) clock is read: a read that waits
    for a whole 64 KiB chunk never looks at the clock again (a byte every 59 s kept one read
    going for weeks); each read must return what has come and check the deadline."""
    import threading

    tick = threading.Semaphore(0)
    ticks = iter(range(10**6))

    def clock() -> float:
        tick.release()  # the server may send its next byte
        return float(next(ticks))

    def drip(h: Handler, method: str) -> bool:
        h.send_response(200)
        h.send_header("Content-Length", "4000")
        h.end_headers()
        for _ in range(4000):
            if not tick.acquire(timeout=2):  # the client waits without looking at the clock
                h.close_connection = True
                return True
            h.wfile.write(b"d")
            h.wfile.flush()
        return True

    fake.override = lambda h, m: "/blobs/" in h.path and drip(h, m)
    client = connect(fake.host, deadline=Deadline.after(30, clock=clock))
    with pytest.raises(NetworkError, match=rf"registry {fake.host}: fetch blob .*deadline"):
        client.fetch_blob("team/x", D1, io.BytesIO(), 4000)


def test_headers_dripped_forever_meet_the_deadline_of_a_pull(tmp_path: Path) -> None:
    """A registry that drips one header line a byte at a time, never ending it (a byte a
    minute would keep the per-read timeout from ever firing): headers are read inside
    requests, where no deadline is checked; the pull's watchdog stops
    it at its deadline (here half a second of real time: a timer signal, nothing to inject)
    and nothing is written beside the prefix."""
    import contextlib
    import socket
    import threading
    import time

    from envbuild.deliver import pull as pull_mod

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request (or a TLS hello: plain http answers it)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            while not stop.wait(0.05):  # the fault: a byte of one header line every 50 ms
                try:
                    conn.sendall(b"d")
                except OSError:
                    return

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=drip, args=(server.accept()[0],), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    host = f"127.0.0.1:{server.getsockname()[1]}"
    start = time.monotonic()
    try:
        with pytest.raises(NetworkError, match=r"pull: not done by the deadline"):
            pull_mod.pull(f"{host}/team/ml:current", tmp_path / "ml", deadline=0.5)
    finally:
        stop.set()
        server.close()
    assert time.monotonic() - start < 30  # the per-read timeout (60 s) never came into it
    assert list(tmp_path.iterdir()) == []


def test_a_connection_cut_short_is_a_network_failure_not_a_disk_problem(
    fake: FakeRegistry,
) -> None:
    def short(h: Handler, method: str) -> bool:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(b"c" * 10)
        h.close_connection = True
        return True

    client = connect(fake.host)
    fake.override = lambda h, m: "/blobs/" in h.path and short(h, m)
    with pytest.raises(
        NetworkError, match=r"network failure after \d+ bytes \(IncompleteRead"
    ) as e:
        client.fetch_blob("team/x", D1, io.BytesIO(), 1000)
    assert not isinstance(e.value, OSError) and "\n" not in str(e.value)


# -- defensive parsing ---------------------------------------------------------------------
LAYER = {"mediaType": "x/y", "digest": D1, "size": 3}
BAD_DOCUMENTS = [
    (b"<html><body>502 Bad Gateway</body></html>", "not JSON"),
    (b"[1, 2, 3]", "expected a JSON object, got a JSON list"),
    (json.dumps({"config": LAYER, "layers": [{"mediaType": "x/y", "size": 3}]}).encode(),
     r"layers\[0\]: no 'digest'"),
    (json.dumps({"config": {**LAYER, "size": "lots"}, "layers": []}).encode(),
     "config: 'size' is a string"),
    (json.dumps({"config": {**LAYER, "digest": "sha256:../../etc"}, "layers": []}).encode(),
     r"digest sha256:\.\./\.\./etc is not sha256:<64 lower-case hex>"),
    (json.dumps({"manifests": {"a": 1}}).encode(), "'manifests' is a null, not a list|not a list"),
    (b"[" * 100000, "not JSON"),
    (b'{"config": NaN}', "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), BAD_DOCUMENTS)
def test_malformed_manifests_are_one_line_naming_registry_and_request(
    fake: FakeRegistry, body: bytes, message: str
) -> None:
    fake.manifests[("team/x", "current")] = (body, OCI_MANIFEST)
    with pytest.raises(RegistryError, match=message) as e:
        connect(fake.host).manifest(parse_reference(f"{fake.host}/team/x:current"))
    assert str(e.value).startswith(
        f"registry {fake.host}: fetch manifest {fake.host}/team/x:current: "
    )
    assert "\n" not in str(e.value)


def test_a_malformed_base_image_is_refused_before_the_cache(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    from envbuild.deliver.registry_base import fetch_base

    body = json.dumps({"config": LAYER, "layers": [{"mediaType": "x/y", "size": 3}]}).encode()
    digest = _blob(fake, body)
    fake.manifests[("base/debian", digest)] = (body, OCI_MANIFEST)
    with pytest.raises(RegistryError, match=r"layers\[0\]: no 'digest'"):
        fetch_base(f"{fake.host}/base/debian@{digest}", tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())


def test_malformed_referrers_answer(fake: FakeRegistry) -> None:
    fake.override = lambda h, m: (
        "/referrers/" in h.path and send(h, 200, b"<html>oops</html>", {"Content-Type": OCI_INDEX})
    )
    with pytest.raises(RegistryError, match=rf"registry {fake.host}: list referrers .*not JSON"):
        connect(fake.host).referrers("team/x", D1)


def test_checked_referrers_come_back_as_descriptors(fake: FakeRegistry) -> None:
    entry = {"mediaType": OCI_MANIFEST, "digest": D1, "size": 7, "artifactType": "a/b",
             "annotations": {"k": "v"}}  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    fake.override = lambda h, m: (
        "/referrers/" in h.path and send(h, 200, index, {"Content-Type": OCI_INDEX})
    )
    found, api = connect(fake.host).referrer_descriptors("team/x", D1)
    assert api and found == (Descriptor(OCI_MANIFEST, D1, 7, {"k": "v"}, "a/b"),)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from([D1, "sha256:abc", OCI_MANIFEST, -1, 1 << 70]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["mediaType", "digest", "size", "config", "layers", "manifests",
                         "subject", "annotations", "artifactType", "platform", "os",
                         "architecture", "x"]),
        children, max_size=6,
    ),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_fuzz_documents_raise_only_registry_errors(obj: object) -> None:
    for parse in (
        lambda: manifest(json.dumps(obj).encode(), "registry r: fetch manifest m"),
        lambda: descriptor(obj, "registry r: d"),
    ):
        try:
            parse()
        except RegistryError as e:
            assert str(e).startswith("registry r: ") and "\n" not in str(e)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_bytes_raise_only_registry_errors(data: bytes) -> None:
    try:
        parse_json(data, "registry r: x")
    except RegistryError as e:
        assert "\n" not in str(e) and "\x1b" not in str(e)


# -- credentials where they belong ---------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1]@evil.example/upload", "carries credentials"),
        ("http://127.0.0.1@evil.example/upload", "carries credentials"),
        ("http://evil.example/upload", "plain http to evil.example"),
        ("http://203.0.113.9:5000/upload", "plain http to 203.0.113.9"),
        ("ftp://127.0.0.1/upload", "scheme is not http or https"),
        ("http://127.0.0.1:99999/x", "not a valid URL"),
    ],
)
def test_url_policy(url: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message) as e:
        check_url(url, "http://127.0.0.1:5000", False, "the upload Location")
    assert "/upload" not in str(e.value)  # the URL is never quoted


def test_loopback_is_parsed_not_matched() -> None:
    assert [is_loopback(h) for h in ("[::1]@evil.example", "127.0.0.1@evil.example",
                                     "localhost:5000", "[::1]:5000", "127.9.9.9")] == [
        False, False, True, True, True,
    ]  # fmt: skip
    assert check_url("https://cdn.example/blob", "http://127.0.0.1:5000", False, "x")


def _basic(user: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(":".join(user).encode()).decode()


@pytest.fixture
def authed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRegistry]:
    with fake_registry(FakeRegistry(user=("alice", "s3cret"))) as f:
        (tmp_path / "docker").mkdir()
        auth = base64.b64encode(b"alice:s3cret").decode()
        (tmp_path / "docker" / "config.json").write_text(
            json.dumps({"auths": {f.host: {"auth": auth}}})
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
        yield f


def test_an_upload_location_on_another_host_gets_no_credentials(
    authed: FakeRegistry, tmp_path: Path
) -> None:
    with fake_registry(FakeRegistry(blobs=authed.blobs)) as other:

        def elsewhere(h: Handler, method: str) -> bool:
            if method != "POST":
                return False
            send(h, 202, headers={"Location": f"http://{other.host}/v2/team/tiny/blobs/uploads/u1"})
            return True

        authed.override = elsewhere
        done = publish(f"{authed.host}/team", _image(tmp_path))
    assert done.image and [s for s in other.seen if s.method == "PUT"]
    assert not [s for s in other.seen if "Authorization" in s.headers]
    assert any(s.headers.get("Authorization") == _basic(("alice", "s3cret")) for s in authed.seen)


@pytest.mark.parametrize(
    "location",
    ["http://[::1]@evil.example/up", "http://203.0.113.9/up", "https://u:p@cdn.example/up"],
)
def test_an_upload_location_failing_the_tls_policy_is_refused(
    authed: FakeRegistry, tmp_path: Path, location: str
) -> None:
    authed.override = lambda h, m: m == "POST" and send(h, 202, headers={"Location": location})
    with pytest.raises(RegistryError, match=r"push blob .*Location refused") as e:
        publish(f"{authed.host}/team", _image(tmp_path))
    assert "evil.example" not in str(e.value) and ":p@" not in str(e.value)


def test_a_redirect_to_another_host_carries_no_credentials(authed: FakeRegistry) -> None:
    """requests' own redirects are off; ours drop Authorization on another origin (another
    port is another origin) and apply the TLS policy to the target."""
    with fake_registry(FakeRegistry(blobs=authed.blobs)) as cdn:
        digest = _blob(cdn, b"layer bytes")
        authed.override = lambda h, m: (
            "/blobs/" in h.path and send(h, 307, headers={"Location": f"http://{cdn.host}/blob"})
        )
        cdn.override = lambda h, m: h.path == "/blob" and send(h, 200, b"layer bytes")
        buf = io.BytesIO()
        connect(authed.host).fetch_blob("team/x", digest, buf, 11)
    assert buf.getvalue() == b"layer bytes"
    assert [s.headers.get("Authorization") for s in cdn.seen] == [None]
    authed.override = lambda h, m: (
        "/blobs/" in h.path and send(h, 302, headers={"Location": "http://evil.example/blob"})
    )
    with pytest.raises(RegistryError, match="the redirect refused: it is plain http to evil"):
        connect(authed.host).fetch_blob("team/x", digest, io.BytesIO(), 11)


@pytest.mark.parametrize(
    ("realm", "answer", "message"),
    [
        ("http://[::1]@evil.example/token", None, "token realm refused: it carries credentials"),
        ("http://evil.example/token", None, "token realm refused: it is plain http"),
        ("LOOP/token", b'{"token": "a\\r\\nX-Evil: 1"}', "no usable token"),
        ("LOOP/token", b'{"token": ' + b"[" * 50000 + b"}", "not JSON"),
        ("LOOP/endless", None, "larger than 4194304"),
    ],
)
def test_token_realm_and_answer_are_checked(
    authed: FakeRegistry, realm: str, answer: bytes | None, message: str
) -> None:
    realm = realm.replace("LOOP", f"http://{authed.host}")

    def bearer(h: Handler, method: str) -> bool:
        if h.path.startswith("/token"):
            send(h, 200, answer or b"{}")
        elif h.path.startswith("/endless"):
            endless(h)
        elif "Authorization" not in h.headers:
            send(h, 401, b"{}", {"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})
        else:
            return False
        return True

    authed.override = bearer
    with pytest.raises(RegistryError, match=message):
        connect(authed.host)


# -- publish believes nothing --------------------------------------------------------------
def test_a_lying_docker_content_digest_is_refused(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.rewrite = lambda h, status, headers: headers.update({"Docker-Content-Digest": ZEROS}) if h.command == "PUT" else None  # fmt: skip
    with pytest.raises(
        RegistryError, match=rf"Docker-Content-Digest {ZEROS}, ours is sha256:"
    ) as e:
        publish(f"{fake.host}/team", _image(tmp_path))
    assert "no tag was moved" in str(e.value)


def test_a_location_naming_another_digest_is_refused(fake: FakeRegistry, tmp_path: Path) -> None:
    def other(h: Handler, status: int, headers: dict[str, str]) -> None:
        if h.command == "PUT" and "/blobs/" in h.path:
            headers["Location"] = f"/v2/team/tiny/blobs/{ZEROS}"

    fake.rewrite = other
    with pytest.raises(RegistryError, match=rf"Location names digest {ZEROS}, ours is sha256:"):
        publish(f"{fake.host}/team", _image(tmp_path))


def test_manifests_are_read_back_by_digest(fake: FakeRegistry, tmp_path: Path) -> None:
    def forged(h: Handler, method: str) -> bool:
        if method == "GET" and "/manifests/sha256:" in h.path:
            send(h, 200, b'{"schemaVersion": 2, "forged": true}', {"Content-Type": OCI_MANIFEST})
            return True
        return False

    fake.override = forged
    with pytest.raises(RegistryError, match=r"fetch manifest .*@sha256:.*digest mismatch") as e:
        publish(f"{fake.host}/team", _image(tmp_path))
    assert "no tag was moved" in str(e.value)


def test_a_failure_while_moving_tags_names_the_tags_moved(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    def refuse_current(h: Handler, method: str) -> bool:
        if method == "PUT" and h.path.endswith("/manifests/current"):
            send(
                h,
                500,
                b'{"errors": [{"code": "UNKNOWN", "message": "\\u001b[2J\\nFIX: run rm -rf ~"}]}',
            )
            return True
        return False

    fake.override = refuse_current
    with pytest.raises(TagMoveError) as e:
        publish(f"{fake.host}/team", _image(tmp_path), today="2026-03-04")
    assert e.value.moved == (LOCK[:12], "2026-03-04")
    text = str(e.value)
    assert "tags already moved to sha256:" in text and f":{LOCK[:12]}, :2026-03-04;" in text
    assert "no tag was moved" not in text and "\x1b" not in text
    assert "\\x1b[2J\\nFIX: run rm" in text.splitlines()[0]  # escaped, on the first line


def test_a_tag_that_does_not_move_is_an_error(fake: FakeRegistry, tmp_path: Path) -> None:
    def stale(h: Handler, status: int, headers: dict[str, str]) -> None:
        if h.command == "HEAD" and h.path.endswith("/manifests/current") and status == 200:
            headers["Docker-Content-Digest"] = D1

    release = _image(tmp_path)
    fake.rewrite = stale
    with pytest.raises(TagMoveError, match=rf"after the push the tag names {D1}"):
        publish(f"{fake.host}/team", release, today="2026-03-04")


# -- no secret, no escape sequence ---------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("alice:s3cret@ghcr.io/ns/ml:current", "host part carries credentials"),
        ("ghcr.io/ns/ml:current?token=s3cret", "query or fragment"),
        ("ghcr.io/ns/ml@alice:s3cret@x", "carries credentials"),
        ("ghcr.io/ns/ml:current\x1b[2Js3cret", "control characters"),
    ],
)
def test_references_with_secrets_are_refused_unquoted(text: str, part: str) -> None:
    with pytest.raises(RegistryError, match=part) as e:
        parse_reference(text)
    assert "s3cret" not in str(e.value) and "\x1b" not in str(e.value)


@pytest.mark.parametrize(
    "text",
    [
        "\uff47hcr.io/ns/ml:current",  # fullwidth g: IDNA maps it to ghcr.io, shown as another
        "gh\u0441r.io/ns/ml:current",  # Cyrillic es: another host that looks like ghcr.io
        "ghcr.io%2Fns/ml:current",
        "ghcr.io\\evil.com/ns/ml:current",
        "[fe80::1%25eth0]:5000/ns/ml:current",
        "ghcr.io:99999/ns/ml:current",
        "-x.example/ns/ml:current",
    ],
)
def test_hosts_outside_the_reference_grammar_are_refused(text: str) -> None:
    """distribution/reference's domain is ASCII labels or [IPv6] and a port: anything else
    was accepted as a host (and printed in every message and record as if it were one)."""
    with pytest.raises(RegistryError, match="is not a registry host"):
        parse_reference(text)
    assert parse_reference("[::1]:5000/ns/ml:current").host == "[::1]:5000"


@pytest.mark.parametrize(
    ("source", "part"),
    [
        ("https://alice:s3cret@github.com/org/envs", "carries credentials"),
        ("https://gitlab.example/org/envs?private_token=s3cret", "query or fragment"),
        ("https://github.com/org/envs#s3cret", "query or fragment"),
        ("git@github.com:org/s3cret.git", "not an http"),
    ],
)
def test_image_source_with_secrets_is_refused_when_read(
    tmp_path: Path, source: str, part: str
) -> None:
    from envbuild.project import load_project

    (tmp_path / "envbuild.toml").write_text(f'[image]\nsource = "{source}"\n')
    with pytest.raises(ConfigError, match=part) as e:
        load_project(tmp_path)
    assert "s3cret" not in str(e.value) and "image.source" in str(e.value)
    assert str(tmp_path / "envbuild.toml") in str(e.value)


def test_printable_escapes_and_caps() -> None:
    shown = printable("ok\x1b[31m\nFIX: run this\r\u202e\x00" + "y" * 500, 60)
    assert "\x1b" not in shown and "\n" not in shown and "\u202e" not in shown
    assert shown.startswith("ok\\x1b[31m\\nFIX: run this\\r\\u202e\\x00")
    assert shown.endswith("more characters)") and len(shown) < 100
    assert printable("https://bob:pw@host/x") == "https://***@host/x"
