"""Publish and pull against real registries (Debian's distribution 2.8 on loopback): plain
http, and htpasswd behind TLS with a CA made here; read back with skopeo; pulled into a fresh
prefix; kill -9, a registry that is down, refused credentials, a corrupted blob."""

from __future__ import annotations

from pathlib import Path

import pytest

from envbuild.deliver.registry import is_loopback
from envbuild.errors import RegistryError
from envbuild.util.reference import parse_reference


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ml:current", "needs a registry host"),
        ("ghcr.io", "needs a registry host"),
        ("ghcr.io/Org/ML:current", "must be lower-case"),
        ("ghcr.io/org/ml@sha256:abc", "64 lower-case hex"),
        ("ghcr.io/org/ml:bad/tag", "must be lower-case"),
        ("https://ghcr.io/org/x:1", "without a scheme"),
    ],
)
def test_bad_references_are_named(text: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_reference(text)


def test_a_reference_with_credentials_is_refused_without_them() -> None:
    with pytest.raises(RegistryError, match="without a scheme") as e:
        parse_reference("HTTP://alice:s3cret@host/org/x")
    assert "s3cret" not in str(e.value) and "alice" not in str(e.value)


def test_references_and_loopback() -> None:
    ref = parse_reference("localhost:5000/team/ml@sha256:" + "a" * 64)
    assert (ref.host, ref.repository, ref.tag, ref.target) == (
        "localhost:5000",
        "team/ml",
        "",
        "sha256:" + "a" * 64,
    )
    assert parse_reference("ghcr.io/org/ml").tag == "latest"
    assert parse_reference("docker.io/debian:bookworm-slim").repository == "library/debian"
    assert [is_loopback(h) for h in ("127.0.0.1:5000", "localhost", "[::1]:80", "10.0.0.1:5000", "ghcr.io")] == [
        True, True, True, False, False,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('registry = "ghcr.io"', "is not HOST\\[:PORT\\]/NAMESPACE"),
        ('registry = "org/ml"', "is not HOST\\[:PORT\\]/NAMESPACE"),
        ('registy = "ghcr.io/org"', "did you mean 'registry'"),
        ('registry = "ghcr.io/Org"', "must be lower-case"),
        ('registry = "ghcr.io/org"\ninsecure = "yes"', "insecure: expected true or false"),
        ('registry = "HTTP://user:s3cret@host/x"', "names a scheme"),
        ('registry = "alice:s3cret@127.0.0.1:5000/ns"', "names a scheme or credentials"),
    ],
)
def test_bad_publish_tables(tmp_path: Path, table: str, message: str) -> None:
    from envbuild.errors import ConfigError
    from envbuild.project import load_project

    (tmp_path / "envbuild.toml").write_text(f"[publish]\n{table}\n")
    with pytest.raises(ConfigError, match=message) as e:
        load_project(tmp_path)
    assert "s3cret" not in str(e.value)
