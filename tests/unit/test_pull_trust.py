"""`envbuild pull` trusts nothing it fetched (issue 28), against Debian's distribution 2.8:
a digest pins the environment, registry text is never code, unpacking writes only files,
directories and links inside the tree within the declared size, relocation runs none of the
tarball's code, ``.NAME.pulls`` must be ours. Environments are tiny hand-made tarballs
(``bin/python`` a two-line shell script) and forged artifacts are pushed with our Client."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from envbuild.deliver import pull as pull_mod
from envbuild.deliver import unpack
from envbuild.errors import EnvBuildError, RegistryError
from envbuild.util.fs import make_removable, remove_tree

PLACEHOLDER = "/opt/envbuild-placeholder-build-prefix/" + "x" * 40


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
