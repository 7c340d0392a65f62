"""Issue 20: ``doit ci_merge`` is a gate. Artifacts come from CI runners (and whoever can
upload to them): names are parsed, one result per recipe and platform, success needs the
lockfile and explicit file with the claimed hashes, files are read with limits and never
through symlinks, and the writes to locks/ happen all together or not at all."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from envbuild.ops import ci
from envbuild.project import load_project
from envbuild.recipe.load import load_recipe

PLATFORMS = ("linux-64", "osx-arm64")
RECIPE = """\
name: {name}
channels: [conda-forge]
platforms: [linux-64, osx-arm64]
dependencies: [python]
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """A project with recipes ``a`` and ``a-x`` (old locks in locks/) and the artifacts of
    a night that relocked both, every platform built with success: the project root."""
    root = tmp_path / "proj"
    (root / "recipes").mkdir(parents=True)
    (root / "envbuild.toml").write_text("")
    locked = root / "artifacts" / ci.LOCKS_ARTIFACT / "locks"
    locked.mkdir(parents=True)
    (root / "artifacts" / ci.LOCKS_ARTIFACT / "reports").mkdir()
    for name in ("a", "a-x"):
        (root / "recipes" / f"{name}.yml").write_text(RECIPE.format(name=name))
        (root / "locks").mkdir(exist_ok=True)
        (root / "locks" / f"{name}.conda-lock.yml").write_text(f"old lock of {name}\n")
        (locked / f"{name}.conda-lock.yml").write_text(f"new lock of {name}\n")
        for platform in PLATFORMS:
            (root / "locks" / f"{name}-{platform}.explicit.txt").write_text("old\n")
            (locked / f"{name}-{platform}.explicit.txt").write_text(f"new {name} {platform}\n")
            _result(root, name, platform, "success")
        report = root / "artifacts" / ci.LOCKS_ARTIFACT / "reports" / f"{name}.lock-diff.md"
        report.write_text(f"diff of {name}\n")
    return root


def _result(root: Path, name: str, platform: str, status: str) -> Path:
    """What a build job uploads, as the workflow's record step writes it (by hand, without
    the explicit file's hash, as earlier versions of envbuild recorded it)."""
    locked = root / "artifacts" / ci.LOCKS_ARTIFACT / "locks"
    out = root / "artifacts" / f"{ci.RESULT_PREFIX}{name}-{platform}"
    out.mkdir(parents=True, exist_ok=True)
    lock = (locked / f"{name}.conda-lock.yml").read_bytes()
    explicit = (locked / f"{name}-{platform}.explicit.txt").read_bytes()
    (out / "lock.conda-lock.yml").write_bytes(lock)
    (out / f"{name}-{platform}.explicit.txt").write_bytes(explicit)
    result = {"recipe": name, "platform": platform, "status": status, "lock_sha256": _sha(lock)}
    (out / "result.json").write_text(json.dumps(result))
    return out


def _merge(root: Path) -> dict[str, str]:
    project = load_project(root)
    recipes = [load_recipe(root / "recipes" / f"{n}.yml", project.platforms) for n in ("a", "a-x")]
    return ci.merge(project, recipes, root / "artifacts").outcome


def _locks(root: Path) -> dict[str, str]:
    return {f.name: f.read_text() for f in sorted((root / "locks").iterdir())}


def test_all_platforms_passed_both_accepted(gate: Path) -> None:
    assert _merge(gate) == {"a": "accepted", "a-x": "accepted"}
    assert all(text.startswith("new") for text in _locks(gate).values())
    assert not (gate / "locks" / ci.STAGING).exists()


def test_a_rejected_recipe_s_files_are_not_copied_with_a_prefix_of_its_name(gate: Path) -> None:
    _result(gate, "a-x", "osx-arm64", "failure")
    outcome = _merge(gate)
    assert outcome["a"] == "accepted" and outcome["a-x"].startswith("rejected")
    locks = _locks(gate)
    assert locks["a-linux-64.explicit.txt"] == "new a linux-64\n"
    assert locks["a-x-linux-64.explicit.txt"] == locks["a-x-osx-arm64.explicit.txt"] == "old\n"


def test_a_forged_second_result_is_an_error_not_a_success(gate: Path) -> None:
    _result(gate, "a-x", "linux-64", "failure")
    forged = gate / "artifacts" / f"{ci.RESULT_PREFIX}a-x-aaa-linux-64"
    forged.mkdir()
    real = gate / "artifacts" / f"{ci.RESULT_PREFIX}a-x-osx-arm64"
    for f in real.iterdir():
        (forged / f.name).write_bytes(f.read_bytes())
    data = json.loads((forged / "result.json").read_text())
    (forged / "result.json").write_text(json.dumps({**data, "platform": "linux-64"}))
    outcome = _merge(gate)
    assert outcome["a-x"].startswith("rejected"), outcome
    assert (gate / "locks" / "a-x.conda-lock.yml").read_text() == "old lock of a-x\n"


def test_success_without_the_lockfile_or_explicit_file_is_rejected(gate: Path) -> None:
    (gate / "artifacts" / f"{ci.RESULT_PREFIX}a-linux-64" / "lock.conda-lock.yml").unlink()
    (
        gate / "artifacts" / f"{ci.RESULT_PREFIX}a-x-osx-arm64" / "a-x-osx-arm64.explicit.txt"
    ).write_text("x")
    outcome = _merge(gate)
    assert "linux-64: lockfile refused" in outcome["a"]
    assert "osx-arm64: explicit file is not the new lock's" in outcome["a-x"]
    assert _locks(gate)["a.conda-lock.yml"] == "old lock of a\n"


def test_a_claimed_explicit_hash_must_match(gate: Path) -> None:
    out = gate / "artifacts" / f"{ci.RESULT_PREFIX}a-osx-arm64"
    claim = json.loads((out / "result.json").read_text())
    (out / "result.json").write_text(json.dumps({**claim, "explicit_sha256": "0" * 64}))
    assert "osx-arm64: explicit file is not the new lock's" in _merge(gate)["a"]
    data = ci.record("a", "linux-64", "success", gate / "rec", gate / "locks")
    assert data.explicit_sha256 == _sha((gate / "locks" / "a-linux-64.explicit.txt").read_bytes())


def test_a_deeply_nested_or_huge_result_is_refused_without_reading_it(gate: Path) -> None:
    deep = gate / "artifacts" / f"{ci.RESULT_PREFIX}a-linux-64" / "result.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    huge = gate / "artifacts" / f"{ci.RESULT_PREFIX}a-x-linux-64" / "result.json"
    with huge.open("r+b") as f:
        f.truncate(2 << 30)  # 2 GB, sparse
    outcome = _merge(gate)
    assert "rejected" in outcome["a"] and "rejected" in outcome["a-x"]
    assert "more than the" in outcome["a-x"]


def test_a_directory_in_place_of_a_file_changes_nothing(gate: Path) -> None:
    locked = gate / "artifacts" / ci.LOCKS_ARTIFACT / "locks"
    (locked / "a-osx-arm64.explicit.txt").unlink()
    (locked / "a-osx-arm64.explicit.txt").mkdir()
    before = _locks(gate)
    outcome = _merge(gate)
    assert "a directory" in outcome["a"]
    after = _locks(gate)
    mine = [f"a{suffix}" for suffix in (".conda-lock.yml", "-linux-64.explicit.txt",
                                        "-osx-arm64.explicit.txt")]  # fmt: skip
    assert [after[n] for n in mine] == [before[n] for n in mine]
    assert (gate / "reports" / "nightly-pr.md").exists()


def test_symlinks_are_never_followed(gate: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOKEN=hunter2\n")
    report = gate / "artifacts" / ci.LOCKS_ARTIFACT / "reports" / "a.lock-diff.md"
    report.unlink()
    report.symlink_to(secret)
    lock = gate / "artifacts" / f"{ci.RESULT_PREFIX}a-x-linux-64" / "lock.conda-lock.yml"
    target = tmp_path / "lock-elsewhere"
    target.write_bytes(lock.read_bytes())
    lock.unlink()
    lock.symlink_to(target)
    outcome = _merge(gate)
    body = (gate / "reports" / "nightly-pr.md").read_text()
    assert "hunter2" not in body and "a symlink" in body
    assert "a symlink" in outcome["a-x"]


def test_a_merge_killed_after_its_manifest_is_finished_by_the_next(gate: Path) -> None:
    """The staged writes: before the manifest nothing counts; after it, the next merge
    moves what is left (the kill itself is what `finish_staged` is for)."""
    staging = gate / "locks" / ci.STAGING
    staging.mkdir()
    (staging / "a.conda-lock.yml").write_text("half of an earlier merge\n")
    ci.finish_staged(gate / "locks")  # no manifest: never started
    assert not staging.exists() and _locks(gate)["a.conda-lock.yml"] == "old lock of a\n"
    staging.mkdir()
    (staging / "a.conda-lock.yml").write_text("new lock of a\n")
    (staging / ci.MANIFEST).write_text(json.dumps(["a.conda-lock.yml", "a-linux-64.explicit.txt"]))
    os.replace(gate / "locks" / "a-linux-64.explicit.txt", staging / "a-linux-64.explicit.txt")
    assert ci.finish_staged(gate / "locks")
    assert _locks(gate)["a.conda-lock.yml"] == "new lock of a\n"
    assert (gate / "locks" / "a-linux-64.explicit.txt").exists() and not staging.exists()
