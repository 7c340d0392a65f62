"""Issue 18: the offline channel's inputs pinned with hashes; same pins -> the same channel,
byte for byte; a bad pin, another interpreter or a missing pin file stop the build with one
message and leave the previous channel."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from envbuild.errors import ChannelError, ConfigError
from envbuild.offline.archives import rewrite_conda
from envbuild.offline.channel import build_offline_channel
from envbuild.offline.pins import read_pins

from ..conftest import CACHE, TEST_PINS, cache_lock
from ..unit.test_pins import SHA, _pins


@pytest.mark.parametrize("what", ["hash", "interpreter", "missing", "requirements"])
def test_bad_input_leaves_the_previous_channel(tmp_path: Path, what: str) -> None:
    channel = tmp_path / "channel"
    (channel / "noarch").mkdir(parents=True)
    (channel / "noarch" / "repodata.json").write_text("{}")
    pin = read_pins(TEST_PINS).pins[0]  # a small pure wheel
    body = f"{pin.name}=={pin.version} --hash=sha256:{SHA}\n"  # a hash no file has
    path = _pins(tmp_path, body, "3.12" if what == "interpreter" else "3.11")
    if what == "missing":
        path.unlink()
    expected = {
        "hash": (
            ChannelError,
            r"(?s)pins.txt: pip could not .*Expected sha256 0+\s+Got .*update the pins on purpose",
        ),
        "interpreter": (ConfigError, r"pinned for Python 3.12"),
        "missing": (ConfigError, r"pin file not found"),
        "requirements": (ConfigError, r"pinned for requirements x, but .* are y"),
    }[what]
    with pytest.raises(expected[0], match=expected[1]) as e:
        requirements = ("y",) if what == "requirements" else ()
        build_offline_channel(channel, tmp_path / "cache", path, requirements)
    assert len(str(e.value).splitlines()) <= 20  # one screen
    assert (channel / "noarch" / "repodata.json").read_text() == "{}"


def test_rewritten_archives_are_the_same_bytes(channel: Path, tmp_path: Path) -> None:
    pkg = next((channel / "noarch").glob("*.conda"))
    copy = tmp_path / "old" / pkg.name
    copy.parent.mkdir()
    copy.write_bytes(pkg.read_bytes())
    os.utime(copy, (0, 0))
    again = rewrite_conda(copy, tmp_path / "new" / pkg.name, 1_700_000_000)
    twice = rewrite_conda(again, tmp_path / "twice" / pkg.name, 1_700_000_000)
    assert again.read_bytes() == twice.read_bytes()
    with zipfile.ZipFile(again) as zf:
        assert zf.namelist()[:1] == ["metadata.json"]
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_same_pins_same_channel_byte_for_byte(channel: Path, tmp_path: Path) -> None:
    """A second build of the test channel (elsewhere, later, the conversions reused or not)
    has the same archives and repodata.json, byte for byte."""
    with cache_lock():
        again = build_offline_channel(tmp_path / "again", CACHE / "offline-cache", TEST_PINS)
    assert _digests(again) == _digests(channel)


def test_marker_requirements_that_hold_are_depends(channel: Path) -> None:
    """ipython's wheel says ``pexpect>4.6; sys_platform != "win32" and ...``: on this
    channel's linux-64 CPython 3.11 it is a depend, as pip would install it; Windows-only
    colorama and the ``black`` extra are not (issue 30)."""
    import json

    repodata = json.loads((channel / "noarch" / "repodata.json").read_text())
    ipython = next(r for r in repodata["packages.conda"].values() if r["name"] == "ipython")
    assert {"pexpect >4.6", "psutil >=7", "typing-extensions >=4.6"} <= set(ipython["depends"])
    assert not any(d.startswith(("colorama", "black")) for d in ipython["depends"])
