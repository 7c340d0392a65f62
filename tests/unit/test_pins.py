"""Issue 18: the offline channel's inputs pinned with hashes; same pins -> the same channel,
byte for byte; a bad pin, another interpreter or a missing pin file stop the build with one
message and leave the previous channel."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from envbuild.errors import ConfigError
from envbuild.lock.epoch import FALLBACK_EPOCH
from envbuild.offline.archives import wheel_epoch
from envbuild.offline.pins import check_interpreter, read_pins

from ..conftest import DEMO_PINS, TEST_PINS, pinned

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


def test_wheel_epoch_comes_from_the_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(zipfile.ZipInfo("a", (2024, 1, 2, 3, 4, 6)), b"a")
        zf.writestr(zipfile.ZipInfo("b", (1980, 1, 1, 0, 0, 0)), b"b")
    assert wheel_epoch(wheel) == 1704164646
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(zipfile.ZipInfo("b", (1980, 1, 1, 0, 0, 0)), b"b")
    assert wheel_epoch(wheel) == FALLBACK_EPOCH
