"""The doit graph end to end, as a user runs it: real doit subprocesses in a temp project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envbuild.graph import tasks

from ..conftest import TINY_RECIPE


def test_offline_channel_check_compares_its_inputs(tmp_path: Path) -> None:
    pins = tmp_path / "pins.txt"
    pins.write_text("pip==1 --hash=sha256:" + "0" * 64 + "\n")
    check = tasks.OfflineInputsUnchanged(pins)
    assert not check(None, {})  # never built
    assert check.digest is not None and '"pins": "' in check.digest
    assert check(None, {"_config_changed": check.digest})  # what doit saved at its success
    pins.write_text("pip==2 --hash=sha256:" + "1" * 64 + "\n")
    other = tasks.OfflineInputsUnchanged(pins)
    assert not other(None, {"_config_changed": check.digest})  # pins changed


def test_an_environment_named_twice_is_one_task(tmp_path: Path) -> None:
    """`envbuild build ml ml` (doit build env=ml,ml): one task per environment, not doit's
    'duplicated definition' error."""
    from envbuild.project import load_project

    (tmp_path / "recipes").mkdir()
    assert load_project(tmp_path).selected("a, a,b,a") == ["a", "b"]


def test_status_of_ml_comma_space_gpu_names_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """env="ml, gpu" selects "ml" and "gpu" for the commands too (status once looked up
    " gpu", an environment no recipe defines); a selection naming none means every recipe."""
    from envbuild.commands import maintenance
    from envbuild.project import load_project

    (tmp_path / "recipes").mkdir()
    for name in ("gpu", "ml", "other"):
        (tmp_path / "recipes" / f"{name}.yml").write_text(TINY_RECIPE.format(name=name))
    maintenance.status(str(tmp_path), "ml, gpu", as_json=True)
    rows = json.loads(capsys.readouterr().out)
    assert [(r["recipe"], r["lock"]) for r in rows] == [("ml", "missing"), ("gpu", "missing")]
    assert load_project(tmp_path).selected(" , ") == ["gpu", "ml", "other"]
