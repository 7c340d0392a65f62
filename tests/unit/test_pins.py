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
from envbuild.lock.epoch import FALLBACK_EPOCH
from envbuild.offline.archives import rewrite_conda, wheel_epoch
from envbuild.offline.channel import build_offline_channel
from envbuild.offline.pins import check_interpreter, read_pins

from ..conftest import CACHE, DEMO_PINS, TEST_PINS, pinned

SHA = "0" * 64


def _pins(tmp_path: Path, body: str, python: str = "3.11") -> Path:
    path = tmp_path / "pins.txt"
    path.write_text(f"# envbuild offline pins: python {python}\n# requirements: x\n{body}")
    return path


def test_committed_pins_parse_and_pin_every_requirement() -> None:
    for path in (TEST_PINS, DEMO_PINS):
        pins = read_pins(path)
        assert pins.python == "3.11" and pins.requirements
        names = {p.name for p in pins.pins}
        assert {r.lower() for r in pins.requirements} <= names
        assert all(p.hashes and "==" not in p.version for p in pins.pins)
    assert pinned("cloudpickle")  # test_doctor's pip-installed wheel is pinned too


@pytest.mark.parametrize(
    ("body", "python", "message"),
    [
        ("six==1.16.0\n", "3.11", r"pins.txt: line 3: expected 'name==version --hash"),
        ("six>=1 --hash=sha256:" + SHA + "\n", "3.11", r"line 3: expected 'name==version"),
        ("", "3.11", r"pins.txt: no pins; regenerate with"),
        ("six==1 --hash=sha256:" + SHA + "\n", "", r"line 1: expected the header"),
    ],
)
def test_bad_pin_files(tmp_path: Path, body: str, python: str, message: str) -> None:
    path = _pins(tmp_path, body, python)
    if not python:
        path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        read_pins(path)


def test_missing_pin_file_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pin file not found .*envbuild.offline.pins"):
        read_pins(tmp_path / "nope.txt")


def test_another_interpreter_is_one_clear_message(tmp_path: Path) -> None:
    pins = read_pins(_pins(tmp_path, f"six==1.16.0 --hash=sha256:{SHA}\n", python="3.12"))
    with pytest.raises(
        ConfigError, match=r"pinned for Python 3.12, but envbuild runs on Python 3.11"
    ):
        check_interpreter(pins)
    check_interpreter(pins, (3, 12, 1))


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


def test_wheel_epoch_comes_from_the_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(zipfile.ZipInfo("a", (2024, 1, 2, 3, 4, 6)), b"a")
        zf.writestr(zipfile.ZipInfo("b", (1980, 1, 1, 0, 0, 0)), b"b")
    assert wheel_epoch(wheel) == 1704164646
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(zipfile.ZipInfo("b", (1980, 1, 1, 0, 0, 0)), b"b")
    assert wheel_epoch(wheel) == FALLBACK_EPOCH


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
    again = build_offline_channel(tmp_path / "again", CACHE / "offline-cache", TEST_PINS)
    assert _digests(again) == _digests(channel)
