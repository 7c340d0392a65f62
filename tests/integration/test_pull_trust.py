"""`envbuild pull` trusts nothing it fetched (issue 28), against Debian's distribution 2.8:
a digest pins the environment, registry text is never code, unpacking writes only files,
directories and links inside the tree within the declared size, relocation runs none of the
tarball's code, ``.NAME.pulls`` must be ours. Environments are tiny hand-made tarballs
(``bin/python`` a two-line shell script) and forged artifacts are pushed with our Client."""

from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from envbuild.deliver import pull as pull_mod
from envbuild.deliver.publish import Release, publish
from envbuild.errors import EnvBuildError, RegistryError, SmokeError
from envbuild.ship import oci_image

from ..support.ociregistry import Registry, forge_environment, pins, running_registry, write_layout
from ..unit.test_pull_trust import PLACEHOLDER, _info

LOCK = "ab" * 32


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("trust")) as r:
        yield r


def _member(tf: tarfile.TarFile, name: str, data: bytes = b"", **kw: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o755 if name.startswith("bin/") else 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    tf.addfile(info, io.BytesIO(data) if info.isreg() else None)


def env_tarball(path: Path, marker: str, extra: list[tarfile.TarInfo] | None = None) -> Path:
    """A conda-pack-like environment: a bin/python that runs this interpreter, a text file
    naming conda-pack's placeholder, and a bin/conda-unpack whose records name it and whose
    code (if it ever ran) would write ``ran-conda-unpack`` beside the tarball."""
    unpack_script = (
        "#!/usr/bin/env python\n"
        f"open({str(path.parent / 'ran-conda-unpack')!r}, 'w').write('ran')\n"
        f"_prefix_records = [\n{('etc/where.txt', PLACEHOLDER, 'text')!r}\n]\n"
    )
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        _member(tf, "bin/python", f'#!/bin/sh\nexec {sys.executable} "$@"\n'.encode())
        _member(tf, "bin/conda-unpack", unpack_script.encode())
        _member(tf, "etc/where.txt", f"prefix={PLACEHOLDER}\n".encode())
        _member(tf, "marker.txt", marker.encode())
        for info in extra or []:
            tf.addfile(info, io.BytesIO(b"\0" * info.size) if info.isreg() else None)
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return path


def _publish(reg: Registry, tmp: Path, name: str, marker: str, imports: tuple[str, ...] = (),
             annotations: dict[str, str] | None = None, tarball: Path | None = None) -> tuple[str, str, Path]:  # fmt: skip
    """Publish a hand-made environment as `doit publish` would; (image, artifact, tarball)."""
    tb = tarball or env_tarball(tmp / f"{name}-{marker}.tar.zst", marker)
    ann = pins(tb, imports) if annotations is None else annotations
    write_layout(tmp / f"layout-{marker}", text=marker, annotations=ann)
    done = publish(
        f"{reg.host}/t",
        Release(name, "linux-64", LOCK, tmp / f"layout-{marker}", tb, None, imports),
    )
    return done.image, done.tarball, tb


def _marker(prefix: Path) -> str:
    return (prefix / "marker.txt").read_text()


def test_image_digest_pins_the_environment_whatever_the_referrers_say(
    reg: Registry, tmp_path: Path
) -> None:
    image, artifact, _ = _publish(reg, tmp_path, "pin", "good", ("json",))
    evil = env_tarball(tmp_path / "evil.tar.zst", "forged")
    forged = forge_environment(reg, "t/pin", image, evil, {"org.envbuild.smoke.imports": "json",
                    oci_image.ANN_ENV_UNPACKED: "100000"})  # fmt: skip
    prefix = tmp_path / "envs" / "pin"
    done = pull_mod.pull(f"{reg.host}/t/pin@{image}", prefix)
    assert (done.artifact, _marker(prefix)) == (artifact, "good")  # main installed "forged"
    # relocated by our code from conda-pack's records; its conda-unpack never ran
    assert (prefix / "etc/where.txt").read_text() == f"prefix={done.directory}\n"
    assert not (tmp_path / "ran-conda-unpack").exists()
    # the forged artifact by its own digest is what it says: its layer is pinned by it
    other = pull_mod.pull(f"{reg.host}/t/pin@{forged}", prefix)
    assert (other.artifact, _marker(prefix)) == (forged, "forged")


def test_several_none_or_mismatch_refused_naming_digests(reg: Registry, tmp_path: Path) -> None:
    image, artifact, tb = _publish(reg, tmp_path, "many", "one", ("json",))
    prefix = tmp_path / "envs" / "many"
    pull_mod.pull(f"{reg.host}/t/many@{image}", prefix)
    twin = forge_environment(reg, "t/many", image, tb, {"org.envbuild.smoke.imports": "os"})
    with pytest.raises(
        RegistryError, match=rf"several artifacts hold it \(({artifact}|{twin}), "
    ) as e:
        pull_mod.pull(f"{reg.host}/t/many@{image}", tmp_path / "envs" / "fresh")
    assert twin in str(e.value) and artifact in str(e.value)
    # an image pinning a tarball no artifact holds (its referrer holds another)
    bogus = {**pins(tb, ("json",)), oci_image.ANN_ENV_DIGEST: "sha256:" + "0" * 64}
    write_layout(tmp_path / "lone", text="lone", annotations=bogus)
    lone = publish(f"{reg.host}/t", Release("many", "linux-64", LOCK, tmp_path / "lone")).image
    other = forge_environment(reg, "t/many", lone, tb, {})
    with pytest.raises(
        RegistryError,
        match=rf"pins environment sha256:0{{64}} .*no environment artifact.*listed: {other}",
    ):
        pull_mod.pull(f"{reg.host}/t/many@{lone}", prefix)
    assert _marker(prefix) == "one"
    assert not (tmp_path / "envs" / "fresh").exists()
    assert pull_mod.pull(f"{reg.host}/t/many@{artifact}", prefix).changed is False


def test_image_without_pins_is_refused_as_older(reg: Registry, tmp_path: Path) -> None:
    _, artifact, _ = _publish(reg, tmp_path, "old", "old", annotations={})
    with pytest.raises(RegistryError, match=r"published by an older envbuild.*by its digest"):
        pull_mod.pull(f"{reg.host}/t/old:current", tmp_path / "env")
    assert not (tmp_path / "env").exists() and not pull_mod.pulls_dir(tmp_path / "env").exists()
    assert pull_mod.pull(f"{reg.host}/t/old@{artifact}", tmp_path / "env").artifact == artifact


def test_import_names_are_data_never_code(reg: Registry, tmp_path: Path) -> None:
    payload = 'json,os;import pathlib;pathlib.Path("pwned").write_text("x")'
    tb = env_tarball(tmp_path / "inj.tar.zst", "inj")
    image, _, _ = _publish(
        reg, tmp_path, "inj", "inj", annotations=pins(tb, (payload,)), tarball=tb
    )
    with pytest.raises(
        RegistryError, match=r"smoke import 'os;import pathlib.*is not a Python module name"
    ):
        pull_mod.pull(f"{reg.host}/t/inj@{image}", tmp_path / "env")
    assert not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()
    from envbuild.recipe.model import Smoke
    from envbuild.ship.smoke import is_module_name, plan

    argv = plan(Smoke(imports=("os.path",)), tmp_path)[0][2]
    assert argv[-1] == "os.path" and "os.path" not in argv[-2]  # a name is an argument
    assert [is_module_name(n) for n in ("a.b_c", "a.", "class", "a b", "é")] == [
        True,
        False,
        False,
        False,
        True,
    ]
    with pytest.raises(SmokeError, match="not Python module names"):
        plan(Smoke(imports=("os;print(1)",)), tmp_path)


def test_bomb_pulled_is_refused_and_the_previous_stays(reg: Registry, tmp_path: Path) -> None:
    image, _, _ = _publish(reg, tmp_path, "bomb", "fine")
    prefix = tmp_path / "envs" / "bomb"
    pull_mod.pull(f"{reg.host}/t/bomb:current", prefix)
    big = _info("share/zeros")
    big.size = 32 << 20
    bomb = env_tarball(tmp_path / "bomb.tar.zst", "bomb", [big])
    lie = {**pins(bomb), oci_image.ANN_ENV_UNPACKED: "2000"}
    _publish(reg, tmp_path, "bomb", "bomb", annotations=lie, tarball=bomb)
    with pytest.raises(
        EnvBuildError, match=rf"more than the unpacked size(.|\n)*{prefix} is unchanged"
    ):
        pull_mod.pull(f"{reg.host}/t/bomb:current", prefix)
    assert _marker(prefix) == "fine"
    assert (
        sorted(
            p.name for p in pull_mod.pulls_dir(prefix).iterdir() if not p.name.endswith(".json")
        )[0]
        == ".lock"
    )
    pull_mod.pull(f"{reg.host}/t/bomb@{image}", prefix)  # the next good pull works
    assert _marker(prefix) == "fine"


def test_a_declared_size_beyond_the_free_disk_is_refused_before_fetching(
    reg: Registry, tmp_path: Path
) -> None:
    """The bound on a bomb is what the manifest declares: 999 TB was honoured blindly (the
    tiny tarball installed; a real bomb could fill the disk up to that)."""
    image, _, _ = _publish(reg, tmp_path, "huge", "fine")
    prefix = tmp_path / "envs" / "huge"
    pull_mod.pull(f"{reg.host}/t/huge@{image}", prefix)
    tb = env_tarball(tmp_path / "huge.tar.zst", "huge")
    lie = {**pins(tb), oci_image.ANN_ENV_UNPACKED: "9" * 15}
    _publish(reg, tmp_path, "huge", "huge", annotations=lie, tarball=tb)
    with pytest.raises(EnvBuildError, match=r"999999999999999 unpacked.*bytes free; refused"):
        pull_mod.pull(f"{reg.host}/t/huge:current", prefix)
    assert _marker(prefix) == "fine"


def test_pulls_dir_must_be_ours(reg: Registry, tmp_path: Path) -> None:
    image, _, _ = _publish(reg, tmp_path, "own", "own")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / ".ml.pulls").symlink_to(victim)
    with pytest.raises(EnvBuildError, match=r"\.ml\.pulls: is a symlink"):
        pull_mod.pull(f"{reg.host}/t/own@{image}", shared / "ml")
    assert [p.name for p in victim.iterdir()] == ["precious"] and not (shared / "ml").exists()
    (shared / ".ml.pulls").unlink()
    (shared / ".ml.pulls").mkdir()
    (shared / ".ml.pulls" / "notes.txt").write_text("mine")
    with pytest.raises(EnvBuildError, match=r"entries envbuild pull did not make \('notes.txt'\)"):
        pull_mod.pull(f"{reg.host}/t/own@{image}", shared / "ml")
    assert (shared / ".ml.pulls" / "notes.txt").read_text() == "mine"
    (shared / ".ml.pulls" / "notes.txt").unlink()
    (shared / ".ml.pulls").chmod(0o777)  # anyone could swap <id>.partial for a symlink
    with pytest.raises(EnvBuildError, match=r"writable by group or others \(mode 777\)"):
        pull_mod.pull(f"{reg.host}/t/own@{image}", shared / "ml")
    assert not (shared / "ml").exists()
    (shared / ".ml.pulls").rmdir()
    old_umask = os.umask(0o002)  # a user-private-group umask: pull's own directory is go-w
    try:
        pull_mod.pull(f"{reg.host}/t/own@{image}", shared / "ml")  # the next good pull works
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((shared / ".ml.pulls").stat().st_mode) == 0o755
    assert _marker(shared / "ml") == "own"


def test_labels_and_annotations_are_escaped_when_printed(
    reg: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    label = "/opt/env\n\x1b[2KFIX: run rm -rf ~\x1b[0m"
    write_layout(tmp_path / "bare", text="bare-esc", labels={"org.envbuild.prefix": label})
    publish(f"{reg.host}/t", Release("bare", "linux-64", LOCK, tmp_path / "bare"))
    assert pull_mod.main([f"{reg.host}/t/bare:current", "--prefix", str(tmp_path / "env")]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b[2KFIX" in err and "\nFIX" not in err
    assert len(err.splitlines()) < 10
