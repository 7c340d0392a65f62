"""Signed provenance (envbuild.deliver.attest, attest_oci; [publish] signing_key): keys made
by ``openssl genpkey`` (Ed25519 and P-256); our envelopes checked by our verifier, by the
in-toto library's DSSE verifier and by ``openssl pkeyutl`` over DSSE's PAE computed here; a
signed publish, a verified pull and three refusals against Debian's distribution 2.8."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envbuild.deliver import attest
from envbuild.deliver import pull as pull_mod
from envbuild.deliver.publish import Release, publish
from envbuild.errors import ConfigError, EnvBuildError, RegistryError
from envbuild.project import load_project
from envbuild.util.keys import key_file, load_private_key
from envbuild.util.mediatypes import IN_TOTO

from ..conftest import Project, imports_ok
from ..support.ociregistry import Registry, forge_environment, layout_archive, pins, write_layout
from . import test_registry

# the real registry and the packed tiny recipe, as test_registry makes them (module fixtures)
packed_project, packed, plain = (
    test_registry.packed_project,
    test_registry.packed,
    test_registry.plain,
)

IMAGE, TARBALL, SBOM = ("sha256:" + c * 64 for c in "123")
FACTS = attest.BuildFacts(
    "tiny", "a" * 64, "b" * 64, "linux-64", "20260102T030405-abc",
    (("https://conda.anaconda.org/conda-forge/noarch/six-1.16.0-pyh6c4a22f_0.conda", "c" * 64),),
)  # fmt: skip
SUBJECTS = (
    attest.Subject("image", "tiny", IMAGE),
    attest.Subject("tarball", "tiny-linux-64.tar.zst", TARBALL),
    attest.Subject("sbom", "tiny-linux-64.cdx.json", SBOM),
)


def _openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ed25519.pem``/``.pub``, ``p256.pem``/``.pub`` as openssl writes them, and keys
    envbuild must refuse: RSA, encrypted, SEC1 ("EC PRIVATE KEY"), P-384."""
    d = tmp_path_factory.mktemp("keys")
    gen = {
        "ed25519": ["-algorithm", "ed25519"],
        "p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    }
    for name, args in gen.items():
        assert _openssl("genpkey", *args, "-out", f"{name}.pem", cwd=d).returncode == 0
        assert _openssl("pkey", "-in", f"{name}.pem", "-pubout", "-out", f"{name}.pub", cwd=d).returncode == 0  # fmt: skip
    _openssl("pkey", "-in", "p256.pem", "-aes256", "-passout", "pass:pw", "-out", "enc.pem", cwd=d)
    _openssl("ec", "-in", "p256.pem", "-out", "sec1.pem", cwd=d)
    assert b"ENCRYPTED" in (d / "enc.pem").read_bytes()
    assert b"BEGIN EC PRIVATE KEY" in (d / "sec1.pem").read_bytes()
    return d


def _envelope(keys: Path, kind: str) -> bytes:
    key = load_private_key(keys / f"{kind}.pem", "test")
    return attest.sign(attest.statement(FACTS, SUBJECTS), key)


@pytest.mark.parametrize("kind", ["ed25519", "p256"])
def test_ours_in_toto_and_openssl_all_verify(keys: Path, kind: str) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from in_toto.exceptions import SignatureVerificationError
    from in_toto.models.metadata import Envelope
    from securesystemslib.signer import SSlibKey

    data = _envelope(keys, kind)
    pub = (keys / f"{kind}.pub").read_bytes()
    info = attest.verify(data, pub, {"image": IMAGE, "tarball": TARBALL, "sbom": SBOM})
    assert (info.build_id, info.recipe, info.lock_sha256) == (FACTS.build_id, "tiny", "b" * 64)
    doc = json.loads(data)
    statement = json.loads(base64.b64decode(doc["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps == [{"uri": FACTS.packages[0][0], "digest": {"sha256": "c" * 64}}]
    # the in-toto library's DSSE verifier, given the key as a securesystemslib key dict
    ssl_key = SSlibKey.from_crypto(load_pem_public_key(pub))
    assert doc["signatures"][0]["keyid"] == ssl_key.keyid == info.keyid
    Envelope.from_dict(json.loads(data)).verify_signature(
        {"keyid": ssl_key.keyid, **ssl_key.to_dict()}
    )
    tampered = {**json.loads(data), "payload": base64.b64encode(b'{"_type":"x"}').decode()}
    with pytest.raises(SignatureVerificationError):
        Envelope.from_dict(tampered).verify_signature({"keyid": ssl_key.keyid, **ssl_key.to_dict()})
    # openssl over DSSE's pre-authentication encoding, computed here from the spec
    body, ptype = base64.b64decode(doc["payload"]), doc["payloadType"].encode()
    pae = b"DSSEv1 %d %b %d %b" % (len(ptype), ptype, len(body), body)
    d = keys / f"check-{kind}"
    d.mkdir(exist_ok=True)
    (d / "sig").write_bytes(base64.b64decode(doc["signatures"][0]["sig"]))
    if kind == "ed25519":
        (d / "msg").write_bytes(pae)
        args = ["-rawin"]
    else:  # ECDSA verifies the SHA-256 digest of the message (DER signature)
        (d / "msg").write_bytes(hashlib.sha256(pae).digest())
        args = []
    check = ["pkeyutl", "-verify", "-pubin", "-inkey", str(keys / f"{kind}.pub"), *args]
    ok = _openssl(*check, "-in", "msg", "-sigfile", "sig", cwd=d)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout
    (d / "msg").write_bytes(pae + b" " if kind == "ed25519" else hashlib.sha256(b"x").digest())
    assert _openssl(*check, "-in", "msg", "-sigfile", "sig", cwd=d).returncode != 0


def test_verify_refuses_other_key_forged_subject_and_junk(keys: Path) -> None:
    data = _envelope(keys, "p256")
    pub = (keys / "p256.pub").read_bytes()
    with pytest.raises(RegistryError, match="not signed by key"):
        attest.verify(data, (keys / "ed25519.pub").read_bytes(), {"image": IMAGE})
    with pytest.raises(RegistryError, match=r"the tarball is sha256:4444.*names sha256:2222"):
        attest.verify(data, pub, {"image": IMAGE, "tarball": "sha256:" + "4" * 64})
    doc = json.loads(data)
    altered = json.loads(base64.b64decode(doc["payload"]))
    altered["subject"][0]["digest"]["sha256"] = "5" * 64  # after signing: our key id, bad sig
    tampered = {**doc, "payload": base64.b64encode(json.dumps(altered).encode()).decode()}
    with pytest.raises(RegistryError, match=r"does not verify \(altered after signing"):
        attest.verify(json.dumps(tampered).encode(), pub, {"image": IMAGE})
    for junk, why in [
        (b"[]", "not a DSSE envelope"),
        (b"<html>", "not JSON"),
        (b"x" * (attest.MAX_ENVELOPE_BYTES + 1), "over"),
        (json.dumps({**doc, "payloadType": "text/plain"}).encode(), "payloadType"),
        (json.dumps({**doc, "payload": "%%%"}).encode(), "not base64"),
        (json.dumps({**doc, "signatures": [{"sig": 5}]}).encode(), "not a DSSE envelope"),
    ]:
        with pytest.raises(RegistryError, match=why):
            attest.verify(junk, pub, {"image": IMAGE})
    with pytest.raises(EnvBuildError, match="not a PEM public key"):
        attest.verify(data, (keys / "p256.pem").read_bytes(), {})
    with pytest.raises(EnvBuildError, match="RSAPublicKey key; envbuild verifies Ed25519"):
        attest.verify(data, (keys / "rsa.pub").read_bytes(), {})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("rsa.pem", "RSA key; envbuild signs with Ed25519 or ECDSA P-256 only"),
        ("p384.pem", "secp384r1 key; envbuild signs with Ed25519"),
        ("enc.pem", "encrypted with a passphrase.*openssl pkey -in"),
        ("sec1.pem", "not a PEM PKCS#8 private key.*openssl pkcs8 -topk8"),
        ("p256.pub", "not a PEM PKCS#8 private key"),
        ("missing.pem", "cannot read it .*openssl genpkey"),
    ],
)
def test_bad_signing_keys_are_refused_when_the_config_is_read(
    keys: Path, tmp_path: Path, name: str, message: str
) -> None:
    (tmp_path / "envbuild.toml").write_text(f'[publish]\nsigning_key = "{keys / name}"\n')
    with pytest.raises(ConfigError, match=message) as e:
        load_project(tmp_path)
    text = str(e.value)
    assert "envbuild.toml: line 2: publish.signing_key" in text and str(keys / name) in text
    if (keys / name).exists():  # no line of the key's body is quoted
        assert (keys / name).read_text().splitlines()[1][:20] not in text


def test_signing_key_from_an_environment_variable(
    keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "envbuild.toml").write_text('[publish]\nsigning_key = "${EB_TEST_KEY}"\n')
    monkeypatch.delenv("EB_TEST_KEY", raising=False)
    project = load_project(tmp_path)  # unset: checked when signing, as channel credentials
    assert project.publish_signing_key == "${EB_TEST_KEY}"
    with pytest.raises(ConfigError, match="EB_TEST_KEY is not set in the environment"):
        key_file(project.publish_signing_key, "publish")
    monkeypatch.setenv("EB_TEST_KEY", str(keys / "rsa.pem"))
    with pytest.raises(ConfigError, match="RSA key"):
        load_project(tmp_path)
    monkeypatch.setenv("EB_TEST_KEY", str(keys / "ed25519.pem"))
    assert key_file(load_project(tmp_path).publish_signing_key, "x") == keys / "ed25519.pem"
    (tmp_path / "envbuild.toml").write_text('[publish]\nsigning_key = "k/${EB_TEST_KEY}.pem"\n')
    with pytest.raises(ConfigError, match=r"or \$\{VAR\} alone"):
        load_project(tmp_path)


def _published_project(root: Path, registry: Registry, key: Path, tarball: Path) -> None:
    """``root``'s envbuild.toml publishing to ``registry`` signed with ``key``, and the image
    and SBOM ``doit publish`` sends beside the packed tarball."""
    config = root / "envbuild.toml"
    base = config.read_text().split("[publish]")[0]
    config.write_text(base + f'[publish]\nregistry = "{registry.host}/signed"\n'
                      f'signing_key = "{key}"\n')  # fmt: skip
    image = tarball.with_name(tarball.name.replace(".tar.zst", ".oci.tar"))
    if not image.exists():
        write_layout(root / "build" / "layout", text="signed",
                     annotations=pins(tarball, ("dateutil", "json")))  # fmt: skip
        layout_archive(root / "build" / "layout", image)
    sbom = tarball.with_name(tarball.name.replace(".tar.zst", ".cdx.json"))
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6"}))


def test_signed_publish_verified_pull_and_three_refusals(
    plain: Registry,
    packed_project: Project,
    packed: Path,
    keys: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from envbuild.commands import stages as commands

    root = packed_project.root
    _published_project(root, plain, keys / "p256.pem", packed)
    commands.execute("publish", str(root), "tiny")
    record = json.loads((root / "build" / "state" / "tiny.publish.json").read_text())
    keyid = attest.load_public_key((keys / "p256.pub").read_bytes(), "t").keyid
    assert record["signed"] and record["signing_keyid"] == keyid and record["attestation"]
    index = json.loads(plain.skopeo("inspect", "--raw", f"docker://{plain.host}/signed/tiny:"
                                    + record["image"].replace(":", "-")))  # fmt: skip
    assert {d["artifactType"] for d in index["manifests"]} == {
        "application/vnd.envbuild.environment.v1",
        "application/vnd.cyclonedx+json",
        "application/vnd.in-toto+json",
    }
    # a re-publish signs nothing new, even with the kept envelope gone (ECDSA differs per run)
    (root / "dist" / "tiny-linux-64.intoto.json").unlink()
    capsys.readouterr()
    commands.execute("publish", str(root), "tiny")
    assert "0 upload(s), 0.0 MB sent, no tag moved (" in (out := capsys.readouterr().out)
    assert f"provenance signed by key {keyid[:16]}" in out
    again = json.loads((root / "build" / "state" / "tiny.publish.json").read_text())
    assert again["attestation"] == record["attestation"]

    # the nightly's push of the same build (kept archive, history tarball) reuses it all
    from envbuild.deliver.release import push_build
    from envbuild.layout import build_record, read_marker

    project = load_project(root)
    info = read_marker(project.env_prefix("tiny"))
    assert info is not None
    kept = root / "dist" / "history" / "tiny" / f"{info.build_id}.oci.tar"
    shutil.copy(root / "dist" / "tiny-linux-64.oci.tar", kept)  # the SBOM is kept already
    assert (
        push_build(project, "tiny", info.build_id, tuple(record["smoke_imports"]))
        == record["image"]
    )
    pushed = json.loads(build_record(project, "tiny", info.build_id, "publish").read_text())
    assert (pushed["uploaded"], pushed["attestation"]) == (0, record["attestation"])

    good = f"{plain.host}/signed/tiny@{record['image']}"
    prefix = tmp_path / "envs" / "tiny"
    first = pull_mod.pull(good, prefix, verify_key=keys / "p256.pub")
    assert first.changed and imports_ok(prefix)
    link, entries = (
        os.readlink(prefix),
        sorted(p.name for p in pull_mod.pulls_dir(prefix).iterdir()),
    )

    # 1. unsigned: the same tarball published without a key to another repository
    write_layout(tmp_path / "layout", text="unsigned", annotations=pins(packed))
    unsigned = publish(f"{plain.host}/plain", Release("tiny", "linux-64", "e" * 64,
                       tmp_path / "layout", packed))  # fmt: skip
    # 2. forged subject: another tarball attached to the signed image (as anyone who can push
    # could), pulled by its artifact digest
    forged_file = tmp_path / "tiny-linux-64.tar.zst"
    shutil.copy(packed, forged_file)
    with forged_file.open("ab") as f:
        f.write(b"\0" * 512)
    forged_artifact = forge_environment(plain, "signed/tiny", record["image"], forged_file,
                                        {"org.envbuild.smoke.imports": "json"})  # fmt: skip
    refusals = [
        (f"{plain.host}/plain/tiny@{unsigned.image}", "p256", "no signed provenance"),
        (good, "ed25519", f"not signed by key .*signed by {keyid[:16]}"),
        (f"{plain.host}/signed/tiny@{forged_artifact}", "p256", "the tarball is sha256:"),
    ]
    fresh = tmp_path / "fresh" / "tiny"
    for ref, kind, message in refusals:
        for where in (prefix, fresh):
            with pytest.raises(RegistryError, match=f"provenance refused.*{message}"):
                pull_mod.pull(ref, where, verify_key=keys / f"{kind}.pub")
        assert os.readlink(prefix) == link and imports_ok(prefix)
        assert sorted(p.name for p in pull_mod.pulls_dir(prefix).iterdir()) == entries
        assert not fresh.parent.exists()  # nothing made beside a first pull refused
    capsys.readouterr()  # what the refused pulls above logged
    code = pull_mod.main([refusals[1][0], "--prefix", str(fresh), "--verify-key",
                          str(keys / "ed25519.pub")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "provenance refused" in err and "Traceback" not in err
    # the refusal is one line; anything else is envbuild's own progress log
    lines = err.strip().splitlines()
    assert len([ln for ln in lines if "provenance refused" in ln]) == 1
    assert all(ln.startswith("envbuild") for ln in lines), lines
    # the next good pull works (by the genuine artifact: the forged one is listed last now)
    done = pull_mod.pull(f"{plain.host}/signed/tiny@{record['tarball']}", fresh,
                         verify_key=keys / "p256.pub")  # fmt: skip
    assert done.changed and done.tarball == first.tarball and imports_ok(fresh)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.binary(max_size=200)
    | _JSON.map(lambda d: json.dumps(d).encode())
    | st.fixed_dictionaries(
        {"payloadType": st.just(IN_TOTO), "payload": st.text(max_size=40) | _JSON,
         "signatures": st.lists(st.fixed_dictionaries({"keyid": _JSON, "sig": st.text(max_size=40)}), max_size=3)}
    ).map(lambda d: json.dumps(d).encode())
)  # fmt: skip
def test_any_envelope_is_refused_with_one_message(keys: Path, data: bytes) -> None:
    pub = (keys / "ed25519.pub").read_bytes()
    with pytest.raises(RegistryError, match=r"^provenance refused: "):
        attest.verify(data, pub, {"image": IMAGE})


def test_a_signed_statement_of_any_shape_is_parsed_defensively(keys: Path) -> None:
    """Signed (so past the signature) but not ours: only RegistryError, never a traceback."""
    key = load_private_key(keys / "ed25519.pem", "test")
    pub = (keys / "ed25519.pub").read_bytes()
    for body in [[], {"_type": attest.STATEMENT_TYPE}, {"_type": attest.STATEMENT_TYPE,
                 "predicateType": attest.PROVENANCE_TYPE, "subject": [1, {"digest": []},
                 {"annotations": {"org.envbuild.role": "image"}, "digest": {"sha256": "zz"}}]}]:  # fmt: skip
        with pytest.raises(RegistryError, match="provenance refused"):
            attest.verify(attest.sign(body, key), pub, {"image": IMAGE})  # type: ignore[arg-type]
