"""Publish and pull against real registries (Debian's distribution 2.8 on loopback): plain
http, and htpasswd behind TLS with a CA made here; read back with skopeo; pulled into a fresh
prefix; kill -9, a registry that is down, refused credentials, a corrupted blob."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from envbuild.deliver import pull as pull_mod
from envbuild.deliver.publish import Release, publish
from envbuild.errors import EnvBuildError, RegistryError
from envbuild.util.kill_points import armed
from envbuild.util.mediatypes import ENV_ARTIFACT, SBOM_ARTIFACT

from ..conftest import REPO, TINY_RECIPE, Project, imports_ok
from ..support.ociregistry import (
    Registry,
    TokenServer,
    layout_archive,
    pins,
    running_registry,
    write_layout,
)

LOCK = "0123456789ab" + "c" * 52


@pytest.fixture(scope="module")
def packed_project(
    tmp_path_factory: pytest.TempPathFactory, channel: Path, package_cache: Path
) -> Project:
    """A project whose tiny recipe is locked, built, smoke-tested and packed (once)."""
    root = tmp_path_factory.mktemp("packed") / "proj"
    (root / "recipes").mkdir(parents=True)
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    (root / "envbuild.toml").write_text(
        f'[mirrors]\nconda-forge = "{channel}"\n[paths]\npackage_cache = "{package_cache}"\n'
    )
    project = Project(root)
    project.write_recipe("tiny", TINY_RECIPE.format(name="tiny"))
    project.doit("pack", "env=tiny")
    return project


@pytest.fixture(scope="module")
def packed(packed_project: Project) -> Path:
    """A real conda-pack tarball of the tiny recipe."""
    return next((packed_project.root / "dist").glob("tiny-*.tar.zst"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("plain")) as reg:
        yield reg


@pytest.fixture
def release(tmp_path: Path, packed: Path) -> Release:
    # an image of its own per test, pinning the tarball
    write_layout(
        tmp_path / "layout", text=str(tmp_path), annotations=pins(packed, ("dateutil", "json"))
    )
    layout_archive(tmp_path / "layout", tmp_path / "tiny.oci.tar")
    sbom = tmp_path / "tiny.cdx.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6"}))
    return Release(
        "tiny", "linux-64", LOCK, tmp_path / "tiny.oci.tar", packed, sbom, ("dateutil", "json")
    )


def test_publish_then_republish_pushes_nothing(plain: Registry, release: Release) -> None:
    first = publish(f"{plain.host}/team", release, today="2026-01-02")
    assert first.tags_moved == (LOCK[:12], "2026-01-02", "current")
    assert first.uploaded >= 7 and not first.referrers_api  # distribution 2.8: the tag schema
    inspect = json.loads(plain.skopeo("inspect", f"docker://{plain.host}/team/tiny:current"))
    assert inspect["Digest"] == first.image
    assert {"current", LOCK[:12], "2026-01-02", first.image.replace(":", "-")} <= set(
        inspect["RepoTags"]
    )
    referrers = json.loads(
        plain.skopeo(
            "inspect", "--raw", f"docker://{plain.host}/team/tiny:{first.image.replace(':', '-')}"
        )
    )
    assert {(d["artifactType"], d["digest"]) for d in referrers["manifests"]} == {
        (ENV_ARTIFACT, first.tarball), (SBOM_ARTIFACT, first.sbom),
    }  # fmt: skip
    artifact = json.loads(
        plain.skopeo("inspect", "--raw", f"docker://{plain.host}/team/tiny@{first.tarball}")
    )
    assert artifact["subject"]["digest"] == first.image
    again = publish(f"{plain.host}/team", release, today="2026-01-03")
    assert (again.uploaded, again.bytes_sent, again.tags_moved) == (0, 0, ())
    assert again.image == first.image and again.tarball == first.tarball


def test_pull_into_fresh_prefix_then_again_does_nothing(
    plain: Registry, release: Release, tmp_path: Path
) -> None:
    done = publish(f"{plain.host}/team", release)
    prefix = tmp_path / "consumer" / "envs" / "tiny"
    first = pull_mod.pull(f"{plain.host}/team/tiny:current", prefix)
    assert first.changed and first.imports == ("dateutil", "json") and imports_ok(prefix)
    assert (
        first.tarball
        == json.loads(
            plain.skopeo("inspect", "--raw", f"docker://{plain.host}/team/tiny@{done.tarball}")
        )["layers"][0]["digest"]
    )
    again = pull_mod.pull(f"{plain.host}/team/tiny@{done.image}", prefix)
    assert not again.changed and again.bytes_received < 10_000
    direct = pull_mod.pull(f"{plain.host}/team/tiny@{done.tarball}", prefix)  # the artifact
    assert not direct.changed and direct.image == done.image
    assert os.readlink(prefix) == os.readlink(prefix)  # unchanged link, same directory
    python = prefix / "bin" / "python"
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True
    )
    assert out.stdout.strip().startswith(str(prefix.parent))


def test_new_publish_switches_and_rollback_returns(
    plain: Registry, release: Release, tmp_path: Path, packed: Path
) -> None:
    publish(f"{plain.host}/team", release)
    prefix = tmp_path / "envs" / "tiny"
    first = pull_mod.pull(f"{plain.host}/team/tiny:current", prefix)
    write_layout(tmp_path / "layout2", text="second", annotations=pins(packed, ("json",)))
    layout_archive(tmp_path / "layout2", tmp_path / "second.oci.tar")
    other = Release(
        "tiny", "linux-64", "f" * 64, tmp_path / "second.oci.tar", packed, None, ("json",)
    )
    publish(f"{plain.host}/team", other)
    second = pull_mod.pull(f"{plain.host}/team/tiny:current", prefix)
    assert second.changed and second.artifact != first.artifact and imports_ok(prefix)
    assert pull_mod.rollback(prefix) == first.artifact.split(":")[1][:12]
    assert pull_mod.current(prefix).artifact == first.artifact  # type: ignore[union-attr]
    back = pull_mod.pull(f"{plain.host}/team/tiny:current", prefix)  # the kept one, no download
    assert back.artifact == second.artifact and back.bytes_received < 10_000
    assert pull_mod.current(prefix).artifact == second.artifact  # type: ignore[union-attr]
    assert pull_mod.rollback(prefix) == first.artifact.split(":")[1][:12]


def test_corrupted_blob_is_refused_and_nothing_is_written(
    plain: Registry, release: Release, tmp_path: Path
) -> None:
    done = publish(f"{plain.host}/team", release)
    blob = json.loads(
        plain.skopeo("inspect", "--raw", f"docker://{plain.host}/team/tiny@{done.tarball}")
    )["layers"][0]["digest"]
    path = plain.blob_file(blob)
    good = path.read_bytes()
    try:
        path.write_bytes(good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:])
        prefix = tmp_path / "envs" / "tiny"
        with pytest.raises(
            RegistryError, match=rf"expected {blob} \(\d+ bytes\), received sha256:[0-9a-f]{{64}}"
        ):
            pull_mod.pull(f"{plain.host}/team/tiny:current", prefix)
        assert not prefix.exists() and not prefix.is_symlink()
        assert not pull_mod.pulls_dir(prefix).exists()  # a failed first pull leaves nothing
    finally:
        path.write_bytes(good)


def test_reference_without_environment(plain: Registry, tmp_path: Path) -> None:
    write_layout(tmp_path / "layout", text="bare", labels={"org.envbuild.prefix": "/opt/env"})
    bare = Release("bare", "linux-64", LOCK, tmp_path / "layout")
    publish(f"{plain.host}/team", bare)
    with pytest.raises(RegistryError, match=r"no environment in it.*layer fixed at /opt/env"):
        pull_mod.pull(f"{plain.host}/team/bare:current", tmp_path / "env")
    with pytest.raises(RegistryError, match=r"no such manifest \(HTTP 404\)"):
        pull_mod.pull(f"{plain.host}/team/absent:current", tmp_path / "env")


def test_registry_down_names_registry_and_step(release: Release, tmp_path: Path) -> None:
    with running_registry(tmp_path / "gone") as reg:
        host = reg.host
    with pytest.raises(RegistryError, match=rf"registry {host}: connect: cannot reach it"):
        publish(f"{host}/team", release)
    with pytest.raises(RegistryError, match=rf"registry {host}: connect: cannot reach it"):
        pull_mod.pull(f"{host}/team/tiny:current", tmp_path / "env")


def test_prefix_not_ours_is_refused(plain: Registry, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    with pytest.raises(EnvBuildError, match="was not made by envbuild pull"):
        pull_mod.pull(f"{plain.host}/team/tiny:current", tmp_path / "mine")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**Project.env(), **env}
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_kill_during_publish_moves_no_tag_and_next_publish_finishes(
    plain: Registry, release: Release, tmp_path: Path
) -> None:
    script = tmp_path / "pub.py"
    script.write_text(
        textwrap.dedent(f"""\
        from pathlib import Path
        from envbuild.deliver.publish import Release, publish
        r = Release("killed", "linux-64", {LOCK!r}, Path({str(release.image)!r}), Path({str(release.tarball)!r}))
        print(publish({plain.host + "/team"!r}, r).to_json())
    """)
    )
    for point in ("publish:blob", "publish:manifest", "publish:referrers"):
        r = _run([str(script)], armed(point))
        assert r.returncode == -9, r.stderr
        tags = plain.tags("team/killed")
        assert "current" not in tags and LOCK[:12] not in tags
    r = _run([str(script)], armed("publish:tag"))  # after the first tag
    assert r.returncode == -9
    done = json.loads(_run([str(script)], {}).stdout)
    assert "current" in done["tags_moved"] and done["bytes_sent"] < 2000
    inspect = json.loads(plain.skopeo("inspect", f"docker://{plain.host}/team/killed:current"))
    assert inspect["Digest"] == done["image"]


def test_kill_during_pull_leaves_prefix_and_next_pull_finishes(
    plain: Registry, release: Release, tmp_path: Path
) -> None:
    publish(f"{plain.host}/team", release)
    prefix = tmp_path / "envs" / "tiny"
    ref = f"{plain.host}/team/tiny:current"
    for point in ("pull:fetched", "pull:unpacked"):
        r = _run(["-m", "envbuild.cli", "pull", ref, "--prefix", str(prefix)], armed(point))
        assert r.returncode == -9, r.stderr
        assert not prefix.exists() and not prefix.is_symlink()
    r = _run(["-m", "envbuild.cli", "pull", ref, "--prefix", str(prefix)], {})
    assert r.returncode == 0, r.stderr
    assert imports_ok(prefix)
    leftovers = sorted(p.name for p in pull_mod.pulls_dir(prefix).iterdir())
    ident = os.readlink(prefix).rsplit("/", 1)[-1]
    assert leftovers == [".lock", ident, f"{ident}.json"]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("tls"), tls_auth=True) as reg:
        yield reg


def _docker_config(tmp_path: Path, host: str, user: str, password: str) -> Path:
    import base64

    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (tmp_path / "docker").mkdir(exist_ok=True)
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return tmp_path / "docker"


def test_tls_and_htpasswd(
    secured: Registry, release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert secured.user is not None and secured.certs_d is not None
    monkeypatch.setenv("DOCKER_CONFIG", str(_docker_config(tmp_path, secured.host, *secured.user)))
    with pytest.raises(
        RegistryError, match=rf"registry {secured.host}: connect: TLS verification failed .*ca.crt"
    ):
        publish(f"{secured.host}/team", release)  # its CA is not known yet
    monkeypatch.setenv("ENVBUILD_CERTS_D", str(secured.certs_d))
    done = publish(f"{secured.host}/team", release)
    assert (
        json.loads(secured.skopeo("inspect", f"docker://{secured.host}/team/tiny:current"))[
            "Digest"
        ]
        == done.image
    )
    assert publish(f"{secured.host}/team", release).bytes_sent == 0
    pulled = pull_mod.pull(f"{secured.host}/team/tiny:current", tmp_path / "env")
    assert pulled.changed and imports_ok(tmp_path / "env")
    monkeypatch.setenv(
        "DOCKER_CONFIG", str(_docker_config(tmp_path, secured.host, "alice", "wrong"))
    )
    with pytest.raises(
        RegistryError,
        match=rf"registry {secured.host}: .*credentials refused \(HTTP 401\).*docker login {secured.host}",
    ):
        publish(f"{secured.host}/team", release)


def test_credential_helper(
    secured: Registry, release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``credHelpers`` in config.json: ``docker-credential-<name> get`` answers."""
    assert secured.user is not None and secured.certs_d is not None
    helper = tmp_path / "bin" / "docker-credential-envtest"
    helper.parent.mkdir()
    helper.write_text(
        f'#!/bin/sh\nread host\necho \'{{"Username": "{secured.user[0]}", "Secret": "{secured.user[1]}"}}\'\n'
    )
    helper.chmod(0o755)
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(
        json.dumps({"credHelpers": {secured.host: "envtest"}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("ENVBUILD_CERTS_D", str(secured.certs_d))
    monkeypatch.setenv("PATH", f"{helper.parent}:{os.environ['PATH']}")
    assert publish(f"{secured.host}/helper", release).image


def test_plain_http_only_for_loopback_or_insecure(
    secured: Registry, plain: Registry, release: Release, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS registry is never spoken to in plain http, even on loopback; a plain one on
    loopback is (as Docker does)."""
    monkeypatch.delenv("ENVBUILD_CERTS_D", raising=False)
    with pytest.raises(RegistryError, match="TLS verification failed"):
        publish(f"{secured.host}/team", release)
    assert publish(f"{plain.host}/loop", release).image


def test_fetch_base_once_digest_checked(plain: Registry, tmp_path: Path) -> None:
    from envbuild.deliver.registry_base import fetch_base
    from envbuild.ship.oci import Layout

    digest = write_layout(tmp_path / "layout", text="base")
    publish(f"{plain.host}/base", Release("debian", "linux-64", LOCK, tmp_path / "layout"))
    ref = f"{plain.host}/base/debian@{digest}"
    with pytest.raises(RegistryError, match="name it by digest"):
        fetch_base(f"{plain.host}/base/debian:current", tmp_path / "cache")
    layer = json.loads(
        (tmp_path / "layout" / "blobs" / "sha256" / digest.split(":")[1]).read_text()
    )["layers"][0]
    path, good = plain.blob_file(layer["digest"]), plain.blob_file(layer["digest"]).read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    with pytest.raises(RegistryError, match=f"expected {layer['digest']}"):
        fetch_base(ref, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())
    path.write_bytes(good)
    cached = fetch_base(ref, tmp_path / "cache")
    with Layout(cached) as layout:
        assert layout.read_json("index.json")["manifests"][0]["digest"] == digest
        assert (
            layout.read_blob(layer["digest"])
            == (
                tmp_path / "layout" / "blobs" / "sha256" / layer["digest"].split(":")[1]
            ).read_bytes()
        )
    # a digest names its content: the cache answers even with the registry gone
    assert fetch_base(ref.replace(plain.host, "127.0.0.1:9"), tmp_path / "cache") == cached
    assert fetch_base(ref, tmp_path / "cache") == cached  # from the cache, no registry asked


def test_publish_a_project_build(
    plain: Registry, packed_project: Project, packed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from envbuild.commands import stages as commands
    from envbuild.errors import ConfigError

    root = packed_project.root
    with pytest.raises(ConfigError, match=r"\[publish\] registry is not set"):
        commands.execute("publish", str(root), "tiny")
    config = root / "envbuild.toml"
    original = config.read_text()
    try:
        config.write_text(original + f'[publish]\nregistry = "{plain.host}/proj"\n')
        image = packed.with_name(packed.name.replace(".tar.zst", ".oci.tar"))
        write_layout(root / "build" / "layout", text="project")
        layout_archive(root / "build" / "layout", image)
        commands.execute("publish", str(root), "tiny")
        line = capsys.readouterr().out
        assert f"{plain.host}/proj/tiny@sha256:" in line and ":current" in line
        record = json.loads((root / "build" / "state" / "tiny.publish.json").read_text())
        tags = plain.tags("proj/tiny")
        assert "current" in tags and record["image"].replace(":", "-") in tags
        lock_sha = json.loads(
            plain.skopeo("inspect", "--raw", f"docker://{plain.host}/proj/tiny@{record['tarball']}")
        )["annotations"]["org.envbuild.lock-sha256"]
        assert lock_sha[:12] in tags
        commands.execute("publish", str(root), "tiny")
        assert "0 upload(s), 0.0 MB sent, no tag moved" in capsys.readouterr().out
        assert "publish" in packed_project.doit("list").stdout
    finally:
        config.write_text(original)


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("registry.example.org/library/debian:bookworm", "names a registry; write it by digest"),
        ("alice:s3cret@127.0.0.1:5000/b/debian@sha256:" + "a" * 64, "no credentials"),
        ("https://alice:s3cret@registry.example.org/debian@sha256:" + "a" * 64, "no scheme"),
    ],
)
def test_bad_registry_bases_are_refused_unquoted(tmp_path: Path, base: str, message: str) -> None:
    from envbuild.errors import ConfigError
    from envbuild.project import load_project

    (tmp_path / "envbuild.toml").write_text(f'[image]\nbase = "{base}"\n')
    with pytest.raises(ConfigError, match=message) as e:
        load_project(tmp_path)
    assert "s3cret" not in str(e.value) and "image.base" in str(e.value)


def test_bearer_token_from_the_realm(
    release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Token authentication: Basic credentials from config.json go to the realm, and a token
    is asked for each scope the registry names (a pull token is not re-sent for a push)."""
    (tmp_path / "reg").mkdir()
    server = TokenServer(tmp_path / "reg", ("bob", "t0ken-pass"))
    try:
        with running_registry(tmp_path / "reg", token=server) as reg:
            monkeypatch.setenv(
                "DOCKER_CONFIG", str(_docker_config(tmp_path, reg.host, "bob", "t0ken-pass"))
            )
            done = publish(f"{reg.host}/team", release)
            asked = [set(s.rsplit(":", 1)[1].split(",")) for s in server.scopes if "team/tiny" in s]
            assert {"pull"} in asked and {"pull", "push"} in asked  # any order: a Go map
            assert pull_mod.pull(f"{reg.host}/team/tiny:current", tmp_path / "env").changed
            tags = json.loads(reg.skopeo("list-tags", f"docker://{reg.host}/team/tiny"))["Tags"]
            assert "current" in tags and done.image.replace(":", "-") in tags
            monkeypatch.setenv(
                "DOCKER_CONFIG", str(_docker_config(tmp_path, reg.host, "bob", "nope"))
            )
            with pytest.raises(RegistryError, match=rf"registry {reg.host}: .*HTTP 401"):
                publish(f"{reg.host}/team", release)
    finally:
        server.close()


def test_full_disk_during_pull_keeps_the_previous(
    plain: Registry, release: Release, tmp_path: Path, packed: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A tmpfs with room for one environment and a half: the second pull runs out of space,
    the first stays at PATH, and nothing is left behind."""
    publish(f"{plain.host}/team", release)
    probe = pull_mod.pull(f"{plain.host}/team/tiny:current", tmp_path / "probe" / "env")
    need = sum(
        f.stat().st_size
        for f in Path(probe.directory).rglob("*")
        if f.is_file() and not f.is_symlink()
    )
    disk = tmp_path / "small"
    disk.mkdir()
    size = need + packed.stat().st_size + need // 2
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        prefix = disk / "env"
        first = pull_mod.pull(f"{plain.host}/team/tiny:current", prefix)
        write_layout(tmp_path / "layout2", text="full", annotations=pins(packed, ("json",)))
        other = Release("tiny", "linux-64", "e" * 64, tmp_path / "layout2", packed, None, ("json",))
        publish(f"{plain.host}/team", other)
        with pytest.raises(
            EnvBuildError, match=rf"bytes free; refused before fetching(.|\n)*{prefix} is unchanged"
        ):
            pull_mod.pull(f"{plain.host}/team/tiny:current", prefix)  # it says what it needs
        monkeypatch.setattr(pull_mod, "_check_room", lambda *a: None)  # filled meanwhile
        with pytest.raises(
            EnvBuildError, match=rf"No space left on device(.|\n)*{prefix} is unchanged"
        ) as e:
            pull_mod.pull(f"{plain.host}/team/tiny:current", prefix)
        assert len(str(e.value).splitlines()) < 20  # one screen
        assert pull_mod.current(prefix).artifact == first.artifact  # type: ignore[union-attr]
        assert imports_ok(prefix)
        ident = first.artifact.split(":")[1][:12]
        assert sorted(p.name for p in pull_mod.pulls_dir(prefix).iterdir()) == [
            ".lock",
            ident,
            f"{ident}.json",
        ]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_push_by_digest_then_move_tags_as_a_switch_step(
    plain: Registry, release: Release, tmp_path: Path
) -> None:
    """What a journaled switch needs: push without tags, then move them in one repeatable step
    (and back, for a rollback)."""
    from envbuild.deliver.tags import move_tags

    first = publish(f"{plain.host}/sw", release)
    write_layout(tmp_path / "layout2", text="candidate")
    candidate = Release("tiny", "linux-64", "d" * 64, tmp_path / "layout2", release.tarball)
    pushed = publish(f"{plain.host}/sw", candidate, tags=False)
    assert pushed.tags_moved == () and "d" * 12 not in plain.tags("sw/tiny")
    assert move_tags(f"{plain.host}/sw", "tiny", pushed.image, "d" * 64, today="2026-02-03") == (
        "d" * 12,
        "2026-02-03",
        "current",
    )
    assert move_tags(f"{plain.host}/sw", "tiny", pushed.image, "d" * 64) == ()
    assert move_tags(f"{plain.host}/sw", "tiny", first.image, LOCK, today="2026-02-03") == (
        "2026-02-03",
        "current",
    )
    assert (
        json.loads(plain.skopeo("inspect", f"docker://{plain.host}/sw/tiny:current"))["Digest"]
        == first.image
    )


def test_artifact_that_is_no_tarball(plain: Registry, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.zst"
    junk.write_bytes(os.urandom(4096))
    write_layout(tmp_path / "layout", text="junk", annotations=pins(junk))
    publish(f"{plain.host}/team", Release("junk", "linux-64", LOCK, tmp_path / "layout", junk))
    with pytest.raises(EnvBuildError, match=r"not a readable tarball(.|\n)*env is unchanged"):
        pull_mod.pull(f"{plain.host}/team/junk:current", tmp_path / "env")
    assert not (tmp_path / "env").exists() and not pull_mod.pulls_dir(tmp_path / "env").exists()


def test_registry_libraries_stay_off_the_no_op_path(packed_project: Project) -> None:
    """Loading the graph (publish tasks included) and a no-op pack import no registry code."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "doit", "pack", "env=tiny"],
        cwd=packed_project.root, env=packed_project.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if "|" in ln}
    assert "envbuild.stages.build" in imported
    assert not {
        m for m in imported if m.split(".")[0] in ("oras", "requests", "urllib3", "jsonschema")
    }
    assert not {
        m
        for m in imported
        if m.startswith(
            ("envbuild.deliver.registry", "envbuild.deliver.publish", "envbuild.deliver.pull")
        )
    }


def test_registry_out_of_space_then_next_publish_finishes(release: Release, tmp_path: Path) -> None:
    with running_registry(tmp_path / "full", storage=4 << 20) as reg:
        with pytest.raises(
            RegistryError,
            match=rf"registry {reg.host}: push blob sha256:[0-9a-f]{{12}} to team/tiny: the registry failed \(HTTP 500.*out of space(.|\n)*no tag was moved",
        ) as e:
            publish(f"{reg.host}/team", release)
        assert reg.tags("team/tiny") == [] and len(str(e.value).splitlines()) == 2
        subprocess.run(["mount", "-o", "remount,size=256m", str(reg.root)], check=True)
        done = publish(f"{reg.host}/team", release)
        assert "current" in done.tags_moved


def test_rollback_moves_current_back(plain: Registry, packed_project: Project) -> None:
    """Two published builds; `doit rollback` switches the environment and :current back."""
    from envbuild.commands import stages as commands
    from envbuild.ship.oci import Layout

    root = packed_project.root
    config, recipe = root / "envbuild.toml", root / "recipes" / "tiny.yml"
    original, original_recipe = config.read_text(), recipe.read_text()
    try:
        config.write_text(original + f'[publish]\nregistry = "{plain.host}/rb"\n')
        digests = []
        for text in ("one", "two"):
            if text == "two":  # a second build, of another lock
                recipe.write_text(
                    original_recipe.replace(
                        "  - python-dateutil\n", "  - python-dateutil\n  - threadpoolctl\n"
                    )
                )
                packed_project.doit("pack", "env=tiny")
            tarball = next((root / "dist").glob("tiny-*.tar.zst"))
            write_layout(root / "build" / f"layout-{text}", text=text)
            layout_archive(
                root / "build" / f"layout-{text}",
                tarball.with_name(tarball.name.replace(".tar.zst", ".oci.tar")),
            )
            with Layout(root / "build" / f"layout-{text}") as layout:
                digests.append(layout.read_json("index.json")["manifests"][0]["digest"])
            # (doit publish would first run doit docker)
            commands.execute("publish", str(root), "tiny")
        assert (
            json.loads(plain.skopeo("inspect", f"docker://{plain.host}/rb/tiny:current"))["Digest"]
            == digests[1]
        )
        # these builds were packed, never imaged (the layouts are made here): with an engine
        # reachable, rollback would want each build's engine image (issue 20), so none here
        no_engine = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
        out = packed_project.doit("rollback", "env=tiny", env=no_engine).stdout
        assert f"{plain.host}/rb/tiny:current is {digests[0]}" in out, out
        assert (
            json.loads(plain.skopeo("inspect", f"docker://{plain.host}/rb/tiny:current"))["Digest"]
            == digests[0]
        )
    finally:
        config.write_text(original)
        recipe.write_text(original_recipe)
