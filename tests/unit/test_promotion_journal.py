"""A promotion journal or candidate record that names a path outside its environment's places
(``../``, an absolute path, another environment) is discarded by :func:`recover`; nothing it
names is linked or removed. Records are files anyone with write access to build/state can edit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envbuild.install import build as build_mod
from envbuild.layout import candidate_dir, promotion_journal
from envbuild.ops import promotion
from envbuild.project import load_project
from envbuild.records import BuildInfo, Switch

BUILD_ID = "20261208T041718063Z-f2ff33a1759e"


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    """A project at tmp_path/proj with one complete build of 'base' (its marker only), and
    tmp_path/victim, a file outside it that no command may touch."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "envbuild.toml").write_text("")
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    proj = load_project(root)
    BuildInfo(
        recipe="base",
        build_id=BUILD_ID,
        platform="linux-64",
        lock_sha256="f2",
        fingerprint="f",
        packages=1,
        seconds=1.0,
    ).save(build_mod.builds_root(proj, "base") / f"{BUILD_ID}.json")
    return root, victim


def _switch(**changes: str) -> Switch:
    sw = Switch(name="base", build_id=BUILD_ID, dist_tarball="dist/base-linux-64.tar.zst")
    return sw.replaced(**changes)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"dist_tarball": "../victim"}, 'its dist_tarball "../victim" is not where'),
        ({"dist_tarball": "/tmp/../{victim}"}, "its dist_tarball"),
        ({"tarball": "../victim"}, "its tarball"),
        ({"tarball": "dist/base-linux-64.tar.zst"}, "its tarball"),  # not a kept one
        ({"context": ".."}, "its context"),
        ({"name": "other"}, "the journal of 'other', not of 'base'"),
    ],
)
def test_a_journal_naming_paths_elsewhere_is_discarded(
    built: tuple[Path, Path], caplog: pytest.LogCaptureFixture, changes: dict[str, str], why: str
) -> None:
    root, victim = built
    proj = load_project(root)
    changes = {k: v.format(victim=victim) for k, v in changes.items()}
    sw = _switch(**changes)
    assert why.split(' "')[0] in promotion.misplaced(proj, "base", sw)
    sw.save(promotion_journal(proj, "base"))
    assert promotion.recover(proj, "base") is False  # nothing switched, no candidate
    assert victim.read_text() == "keep me"
    assert not promotion_journal(proj, "base").exists()
    assert not (root / "envs" / "base").exists()  # envs/base was never linked
    assert why in caplog.text


def test_a_journal_of_this_project_passes(built: tuple[Path, Path]) -> None:
    root, _ = built
    proj = load_project(root)
    sw = _switch(
        tarball=f"dist/history/base/{BUILD_ID}.tar.zst",
        context="build/state/candidate/base/docker",
    )
    assert promotion.misplaced(proj, "base", sw) == ""


@pytest.mark.parametrize("build_id", ["../../..", "../../../..", "/", ".", "", "x/../../.."])
def test_a_candidate_record_naming_a_build_elsewhere_removes_nothing_but_its_staging(
    built: tuple[Path, Path], build_id: str
) -> None:
    """``envs/.builds/base/../../..`` is the project root: a candidate record saying so must
    not make recovery remove the project (or ``/``)."""
    root, victim = built
    proj = load_project(root)
    staging = candidate_dir(proj, "base")
    staging.mkdir(parents=True)
    (staging / "candidate.json").write_text(json.dumps({"build_id": build_id}))
    assert promotion.recover(proj, "base") is True
    assert not staging.exists()
    assert (root / "envbuild.toml").exists()
    assert (build_mod.builds_root(proj, "base") / f"{BUILD_ID}.json").exists()
    assert victim.read_text() == "keep me"
