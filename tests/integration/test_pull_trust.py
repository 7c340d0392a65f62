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
from envbuild.deliver import unpack
from envbuild.deliver.publish import Release, publish
from envbuild.errors import EnvBuildError, RegistryError, SmokeError
from envbuild.ship import oci_image
from envbuild.util.fs import make_removable, remove_tree

from ..support.ociregistry import Registry, forge_environment, pins, running_registry, write_layout

LOCK = "ab" * 32
PLACEHOLDER = "/opt/envbuild-placeholder-build-prefix/" + "x" * 40


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


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for k, v in kw.items():
        setattr(info, k, v)
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([(_info("lib/libdisk.so", tarfile.BLKTYPE, devmajor=254), b"")], "a block device"),
        ([(_info("fifo", tarfile.FIFOTYPE), b"")], "a FIFO"),
        ([(_info("tty", tarfile.CHRTYPE), b"")], "a character device"),
        ([(_info("../x"), b"x")], "leaves the environment"),
        ([(_info("/etc/x"), b"x")], "leaves the environment"),
        ([(_info("up", tarfile.SYMTYPE, linkname="../../etc"), b"")], "outside it"),
        ([(_info("l", tarfile.SYMTYPE, linkname="."), b""),
          (_info("m", tarfile.SYMTYPE, linkname="l/l/l/../../.."), b"")], "outside it"),
        ([(_info("d", tarfile.SYMTYPE, linkname="e"), b""), (_info("d/f"), b"x")], "through a symlink"),
        ([(_info("f", tarfile.SYMTYPE, linkname="g"), b""), (_info("f"), b"x")], "second member"),
        ([(_info("h", tarfile.LNKTYPE, linkname="/etc/passwd"), b"")], "hard link"),
        ([(_info("big"), b"\0" * (3 << 20))], "more than the unpacked size"),
        ([(_info("a/" * 3000 + "f"), b"x")], "directories deep"),  # was a RecursionError
        ([(_info("d/" + "n" * 300), b"x")], "name over 255 bytes"),
    ],
)  # fmt: skip
def test_unpack_refuses(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], message: str
) -> None:
    tb = _tar(tmp_path / "t.tar.zst", members)
    with pytest.raises(EnvBuildError, match=message):
        unpack.unpack(tb, tmp_path / "dest", 1000, "ref")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "t.tar.zst"]


def test_unpack_masks_modes_and_keeps_links_inside(tmp_path: Path) -> None:
    tb = _tar(tmp_path / "t.tar.zst", [
        (_info("bin", tarfile.DIRTYPE, mode=0o777), b""),
        (_info("bin/tool", mode=0o6777), b"#!/bin/sh\n"),
        (_info("bin/link", tarfile.SYMTYPE, linkname="tool"), b""),
        (_info("bin/hard", tarfile.LNKTYPE, linkname="bin/tool", mode=0o4777), b""),
        (_info("lib/data", mode=0o666), b"x"),
    ])  # fmt: skip
    unpack.unpack(tb, tmp_path / "d", 100, "ref")
    assert stat.S_IMODE(os.stat(tmp_path / "d/bin/tool").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "d/lib/data").st_mode) == 0o644
    assert os.readlink(tmp_path / "d/bin/link") == "tool"
    assert os.stat(tmp_path / "d/bin/hard").st_ino == os.stat(tmp_path / "d/bin/tool").st_ino


def test_a_hard_link_is_made_to_its_checked_name_not_through_a_symlink(tmp_path: Path) -> None:
    """`h` -> `s/../f` normalises to the file `f`, but the kernel resolves it through the
    symlink `s` to `x/y/z/f`, a symlink climbing three levels: linked as written, `h` became
    a symlink to `../../..` at the top of the tree, outside it."""
    tb = _tar(tmp_path / "t.tar.zst", [
        (_info("x/y/z/w", tarfile.DIRTYPE, mode=0o755), b""),
        (_info("x/y/z/f", tarfile.SYMTYPE, linkname="../../.."), b""),
        (_info("s", tarfile.SYMTYPE, linkname="x/y/z/w"), b""),
        (_info("f"), b"regular"),
        (_info("h", tarfile.LNKTYPE, linkname="s/../f"), b""),
    ])  # fmt: skip
    unpack.unpack(tb, tmp_path / "d", 100, "ref")
    assert not (tmp_path / "d/h").is_symlink()
    assert os.stat(tmp_path / "d/h").st_ino == os.stat(tmp_path / "d/f").st_ino


def test_zstd_bomb_stops_at_the_declared_size(tmp_path: Path) -> None:
    big = _info("zeros")
    big.size = 64 << 20
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        tf.addfile(big, io.BytesIO(b"\0" * big.size))
    tb = tmp_path / "bomb.tar.zst"
    tb.write_bytes(zstandard.ZstdCompressor(level=19).compress(raw.getvalue()))
    assert tb.stat().st_size < 100_000
    with pytest.raises(EnvBuildError, match="decompression bomb"):
        unpack.unpack(tb, tmp_path / "d", 10_000, "ref")
    assert not (tmp_path / "d" / "zeros").exists()


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


def test_an_index_is_read_defensively_and_never_guessed_from() -> None:
    """A ``platform`` that is not an object ended pull in an AttributeError traceback; two
    entries for this machine with different digests were settled by taking the first."""
    arch = pull_mod._arch()
    mine = {"os": "linux", "architecture": arch}
    assert pull_mod.for_this_machine([{"platform": [1]}, {"platform": "linux"}]) is None
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    same = [{"platform": mine, "digest": a}, {"platform": mine, "digest": a}]
    assert pull_mod.for_this_machine(same) == same[0]
    with pytest.raises(RegistryError, match=rf"ref: .*several linux/{arch} images"):
        pull_mod.for_this_machine([{"platform": mine, "digest": a},
                                   {"platform": mine, "digest": b}], "ref")  # fmt: skip


def test_relocation_records_are_data(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/conda-unpack").write_text(
        "_prefix_records = [('../../etc/passwd', '/p', 'text')]\n"
    )
    with pytest.raises(EnvBuildError, match="leaves the prefix"):
        unpack.relocate(tmp_path, "ref")
    (tmp_path / "bin/conda-unpack").write_text(
        "_prefix_records = [__import__('os').system('id')]\n"
    )
    with pytest.raises(EnvBuildError, match="no literal _prefix_records"):
        unpack.relocate(tmp_path, "ref")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/bin.so").write_bytes(b"\x00" + PLACEHOLDER.encode() + b"/lib\x00tail")
    (tmp_path / "bin/conda-unpack").write_text(
        f"_prefix_records = [('lib/bin.so', {PLACEHOLDER!r}, 'binary')]\n"
    )
    assert unpack.relocate(tmp_path, "ref") == 1
    data = (tmp_path / "lib/bin.so").read_bytes()
    assert data.startswith(b"\x00" + str(tmp_path).encode() + b"/lib\x00") and data.endswith(
        b"\x00tail"
    )
    assert len(data) == len(PLACEHOLDER) + 10


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


def test_remove_tree_never_chmods_through_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside.write_text("x")
    outside.chmod(0o600)
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "link").symlink_to(outside)
    (tree / "d").chmod(0o500)
    real_unlink, refused = os.unlink, list[str]()

    def unlink(path: str, *a: object, **kw: object) -> None:  # as a non-root user would see it
        if str(path).endswith("link") and not refused:
            refused.append(str(path))
            raise PermissionError(13, "Permission denied", path)
        real_unlink(path, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", unlink)
    remove_tree(tree)
    assert refused and not tree.exists()
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600  # main made it 0o700
    with pytest.raises(OSError):
        make_removable(os.path.islink, str(outside), (OSError, OSError("a link"), None))


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
