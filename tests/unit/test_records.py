"""envbuild.records: every record reads back what the envbuild before it wrote (no version:
version 1), round-trips through save/load, and a damaged or too-new record is one clear
RecordError naming the file and the fix (``peek``: None, so the stage reruns)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from envbuild.errors import RecordError
from envbuild.records import (
    BuildInfo,
    Candidate,
    DockerRecord,
    ImageRecord,
    LockStamp,
    NightlyResult,
    PackRecord,
    PackState,
    PublishRecord,
    Pulled,
    Record,
    SmokeRecord,
    StageStamp,
    Switch,
    VerifyReport,
    base,
)

# Real records written by envbuild before this module (commit 383aa57: `doit env=base` then
# `doit verify env=base` on the demo project), byte for byte.
BEFORE = Path(__file__).parent / "records_before"
BUILD_ID = "20261208T041718063Z-f2ff33a1759e"
LOCK = "f2ff33a1759ea9cfdeb9f306b8ee8b25cd12b974c2490d2f2b608a5121c55218"

SAMPLES: list[tuple[str, type[Record]]] = [
    ("marker.json", BuildInfo),
    ("state.build.json", BuildInfo),
    ("state.lock.json", LockStamp),
    ("state.smoke.json", SmokeRecord),
    ("build.pack.json", PackRecord),
    ("state.pack.json", PackState),
    ("state.docker.json", DockerRecord),
    ("state.image.json", ImageRecord),
    ("build.image.json", ImageRecord),
    ("verify.json", VerifyReport),
]

# Shapes of the records the demo run does not write, as the code before this module wrote
# them (json.dumps of these dicts; asdict of the dataclasses named).
OLD_SHAPES: list[tuple[dict[str, Any], type[Record]]] = [
    ({"build_id": BUILD_ID}, Candidate),  # install/build.py _note_candidate
    (  # commands/stages.py _docker, engine-built image
        {
            "tag": "envbuild/base:f2ff",
            "id": "sha256:ab",
            "size": 10,
            "build_id": BUILD_ID,
            "inputs": "9f",
        },
        ImageRecord,
    ),
    (  # asdict(promotion.Switch)
        {
            "name": "base",
            "build_id": BUILD_ID,
            "dist_tarball": "dist/base-linux-64.tar.gz",
            "tarball": "dist/history/base/x.tar.gz",
            "context": "",
            "image": "",
            "registry": "",
            "registry_image": "",
        },
        Switch,
    ),
    (  # asdict(nightly.NightlyResult)
        {
            "recipe": "base",
            "status": "failed",
            "stage": "smoke",
            "error": "boom",
            "build_id": BUILD_ID,
            "changes": [
                {
                    "platform": "linux-64",
                    "manager": "conda",
                    "name": "python",
                    "kind": "upgraded",
                    "old": "3.11.6 h",
                    "new": "3.11.7 h",
                }
            ],
            "smoke": [
                {
                    "kind": "import",
                    "target": "json",
                    "returncode": 1,
                    "seconds": 0.1,
                    "stderr": "x",
                    "stdout": "",
                }
            ],
            "build_seconds": 1.5,
            "env_bytes": 3,
            "tarball_bytes": 4,
            "image": "",
            "seconds": 2.0,
            "exclude_newer": "2026-01-01",
        },
        NightlyResult,
    ),
    (  # release._record: asdict(Published) + build_id + smoke_imports
        {
            "repository": "localhost:5000/ns/base",
            "image": "sha256:aa",
            "tarball": "sha256:bb",
            "sbom": "",
            "tags_moved": ["current", "f2ff33a1759e"],
            "uploaded": 3,
            "bytes_sent": 100,
            "bytes_received": 0,
            "referrers_api": True,
            "seconds": 0.5,
            "signed": False,
            "signing_keyid": "",
            "attestation": "",
            "build_id": BUILD_ID,
            "smoke_imports": ["json"],
        },
        PublishRecord,
    ),
    (  # asdict(pull.Pulled)
        {
            "reference": "localhost:5000/ns/base:current",
            "image": "sha256:aa",
            "artifact": "sha256:cc",
            "tarball": "sha256:bb",
            "directory": "/p/.pulls/x",
            "imports": ["json"],
            "bytes_received": 5,
            "seconds": 0.1,
            "changed": True,
        },
        Pulled,
    ),
    ({"inputs": "9f", "sources": {"recipes/base.yml": "aa"}}, StageStamp),  # docker.inputs.json
]


@pytest.mark.parametrize(("name", "cls"), SAMPLES, ids=[n for n, _ in SAMPLES])
def test_a_record_written_before_reads_back_as_version_1(name: str, cls: type[Record]) -> None:
    path = BEFORE / name
    old = json.loads(path.read_text())
    assert "version" not in old
    rec = cls.load(path)
    assert rec is not None
    new = rec.to_dict()
    assert "version" not in new  # version 1 is written as before: an older envbuild reads it
    for key, value in old.items():  # every old key kept, with its value
        assert new[key] == value, key


def test_the_samples_say_what_they_are() -> None:
    marker = BuildInfo.load(BEFORE / "marker.json")
    assert marker is not None
    assert (marker.build_id, marker.lock_sha256, marker.packages) == (BUILD_ID, LOCK, 1)
    smoke = SmokeRecord.load(BEFORE / "state.smoke.json")
    assert smoke is not None and smoke.passed_for(BUILD_ID) and not smoke.passed_for("x")
    assert smoke.sources["recipes/base.yml"].startswith("deb93f")
    image = ImageRecord.load(BEFORE / "state.image.json")
    assert image is not None and image.smoke_status == "passed" and image.env_bytes > 0
    pack = PackState.load(BEFORE / "state.pack.json")
    assert pack is not None and pack.reproduced is None
    assert pack.known[PackState.known_key(LOCK, "tar.gz", 3)] == pack.tarball_sha256
    verify = VerifyReport.load(BEFORE / "verify.json")
    assert verify is not None and not verify.drifted_for(BUILD_ID)


@pytest.mark.parametrize(("data", "cls"), OLD_SHAPES, ids=[c.__name__ for _, c in OLD_SHAPES])
def test_old_shapes_read_and_write_the_same_keys(
    tmp_path: Path, data: dict[str, Any], cls: type[Record]
) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    rec = cls.load(path)
    assert rec is not None
    rec.save(path)
    again = json.loads(path.read_text())
    assert "version" not in again
    assert {k: again[k] for k in data} == data
    assert cls.load(path) == rec


def test_an_engine_built_image_record_counts_as_smoke_passed() -> None:
    rec = ImageRecord.from_dict({"tag": "t", "build_id": BUILD_ID})
    assert rec.smoke_status == "passed"
    assert ImageRecord.from_dict({"build_id": BUILD_ID}).smoke_status == ""


def test_absent_is_none(tmp_path: Path) -> None:
    assert SmokeRecord.load(tmp_path / "none.json") is None
    assert SmokeRecord.peek(tmp_path / "none.json") is None
    (tmp_path / "file").write_text("")
    assert SmokeRecord.load(tmp_path / "file" / "under.json") is None


DAMAGED = [
    ("{not json", "is not valid JSON"),
    ("\udcff", "is not valid JSON"),
    ("[1, 2]", "is not a JSON object"),
    ('{"recipe": "base", "status": "passed"}', "lacks 'build_id'"),
    ('{"recipe": "base", "build_id": 7, "status": "passed"}', "'build_id' should be string (a"),
    # a field that becomes a path: never a directory outside envs/.builds/<name>/
    ('{"recipe": "b", "build_id": "../../..", "status": "p"}', "should be string (a build id"),
    ('{"recipe": "b", "build_id": "/", "status": "p"}', 'not "/" (damaged)'),
    ('{"recipe": "b", "build_id": "a/../../b", "status": "p"}', "(damaged)"),
    ('{"recipe": "b", "build_id": "x*", "status": "p"}', "(damaged)"),
    # hostile but valid-looking JSON: no traceback, no float('nan') in a record
    ('{"recipe": "b", "build_id": "x", "status": "p", "checks": [{"s": NaN}]}', "not valid JSON"),
    ('{"version": Infinity, "recipe": "b", "build_id": "x", "status": "p"}', "not valid JSON"),
    ('{"version": 1e400, "recipe": "b", "build_id": "x", "status": "p"}', "not valid JSON"),
    ('{"version": 1e308, "recipe": "b", "build_id": "x", "status": "p"}', "no valid version"),
    ('{"version": true, "recipe": "b", "build_id": "x", "status": "p"}', "no valid version"),
    ('{"version": ' + "9" * 5000 + "}", "not valid JSON"),
    (
        '{"recipe": "b", "build_id": "x", "status": "p", "checks": '
        + "[" * 100_000
        + "]" * 100_000
        + "}",
        "not valid JSON",
    ),
    (
        '{"recipe": ["b"' + ', "b"' * 100_000 + '], "build_id": "x", "status": "p"}',
        "'recipe' should be string, not [...]",
    ),
    (
        '{"version": "\\u001b[31m' + "x" * 1000 + '", "recipe": "b"}',
        'no valid version ("\\u001b[31mx',
    ),
    (
        '{"recipe": "b", "build_id": "x", "status": "passed", "checks": {}}',
        "'checks' should be array of object of anything, not {}",
    ),
    ('{"version": 2, "recipe": "b", "build_id": "x", "status": "p"}', "is version 2"),
    ('{"version": "1", "recipe": "b", "build_id": "x", "status": "p"}', "no valid version"),
    ('{"version": 0, "recipe": "b", "build_id": "x", "status": "p"}', "is version 0"),
]


@pytest.mark.parametrize(("text", "what"), DAMAGED, ids=[w for _, w in DAMAGED])
def test_a_damaged_record_is_one_clear_message(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "base.smoke.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(RecordError) as e:
        SmokeRecord.load(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: this smoke record")
    assert what in msg
    assert "remove it and run `doit smoke`" in msg
    assert SmokeRecord.peek(path) is None  # an up-to-date check: not current, no traceback


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory", "loop", "huge"])
def test_a_record_that_is_not_a_small_regular_file_is_not_read(tmp_path: Path, kind: str) -> None:
    """A FIFO would hang the up-to-date check, /dev/zero behind a symlink would fill memory:
    neither is read; like a directory, a symlink loop or a file over MAX_BYTES they are one
    RecordError (peek: None, the stage runs again)."""
    path = tmp_path / "base.smoke.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    elif kind == "loop":
        path.symlink_to(path.name)
    else:
        with path.open("wb") as f:
            f.truncate(base.MAX_BYTES + 1)  # sparse: nothing written
    with pytest.raises(RecordError, match="this smoke record cannot be read"):
        SmokeRecord.load(path)
    assert SmokeRecord.peek(path) is None


def test_saving_over_a_symlinked_record_replaces_the_link_not_its_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("not ours")
    path = tmp_path / "base.smoke.json"
    path.symlink_to(target)
    SmokeRecord(recipe="base", build_id="x", status="passed").save(path)
    assert target.read_text() == "not ours"
    assert not path.is_symlink()
    assert SmokeRecord.load(path) == SmokeRecord(recipe="base", build_id="x", status="passed")


def test_types_are_checked_and_converted() -> None:
    rec = BuildInfo.from_dict(
        {"recipe": "b", "build_id": "x", "platform": "linux-64", "lock_sha256": "a",
         "fingerprint": "f", "packages": 3, "seconds": 2}
    )  # fmt: skip
    assert rec.seconds == 2.0 and isinstance(rec.seconds, float) and rec.prefix == ""
    with pytest.raises(RecordError, match="'packages' should be integer, not true"):
        BuildInfo.from_dict({**rec.to_dict(), "packages": True})
    with pytest.raises(RecordError, match=r"'packages' should be integer, not 1\.5"):
        BuildInfo.from_dict({**rec.to_dict(), "packages": 1.5})
    pulled = Pulled.from_dict({**OLD_SHAPES[5][0]})
    assert pulled.imports == ("json",)
    with pytest.raises(RecordError, match=r"'imports' should be array of string, not \[1\]"):
        Pulled.from_dict({**OLD_SHAPES[5][0], "imports": [1]})
    with pytest.raises(RecordError, match="'known' should be object of string"):
        PackState.from_dict({**json.loads((BEFORE / "state.pack.json").read_text()),
                             "known": {"k": 1}})  # fmt: skip


def test_save_is_atomic_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "c.json"
    Candidate(BUILD_ID).save(path)
    assert json.loads(path.read_text()) == {"build_id": BUILD_ID}  # version 1: no key

    assert [p.name for p in path.parent.iterdir()] == ["c.json"]  # no temporary left
    assert Candidate.load(path) == Candidate(BUILD_ID)

    @dataclasses.dataclass(frozen=True)
    class CandidateV2(Candidate):
        VERSION = 2

    CandidateV2(BUILD_ID).save(path)
    assert json.loads(path.read_text()) == {"version": 2, "build_id": BUILD_ID}
    assert CandidateV2.load(path) == CandidateV2(BUILD_ID)
    with pytest.raises(RecordError, match="is version 2"):
        Candidate.load(path)  # written by a newer envbuild: one clear message
    assert Candidate(BUILD_ID).replaced(build_id="y").build_id == "y"


def test_records_are_frozen() -> None:
    rec = Candidate(BUILD_ID)
    with pytest.raises(AttributeError):
        rec.build_id = "y"  # type: ignore[misc]


def test_the_up_to_date_checks_rerun_a_stage_whose_record_is_damaged(tmp_path: Path) -> None:
    """The policy (envbuild/records/base.py): a damaged or too-new record is "not current"
    for doit (no traceback); the stage that then runs rewrites it. A damaged verify report
    hides no drift it recorded: it is read as absent, as before."""
    from envbuild.layout import project_at
    from envbuild.stages.build import build_is_current
    from envbuild.stages.smoke import smoke_is_current
    from envbuild.util.fs import file_sha256

    (tmp_path / "envbuild.toml").write_text("")
    project = project_at(tmp_path)
    lock = project.lockfile("tiny")
    lock.parent.mkdir(parents=True)
    lock.write_text("version: 1\n")
    prefix = project.path("envs") / ".builds" / "tiny" / BUILD_ID
    prefix.mkdir(parents=True)
    project.env_prefix("tiny").symlink_to(prefix)
    info = BuildInfo("tiny", BUILD_ID, "linux-64", file_sha256(lock), "f", 1, 0.1, str(prefix))
    info.save(prefix.with_name(BUILD_ID + ".json"))
    state = project.path("state") / "tiny.build.json"
    info.save(state)
    assert build_is_current(tmp_path, "tiny")
    for damaged in ("{", '{"version": 99}', json.dumps({**info.to_dict(), "packages": "1"})):
        state.write_text(damaged)
        assert not build_is_current(tmp_path, "tiny"), damaged
    info.save(state)
    smoke = project.path("state") / "tiny.smoke.json"
    SmokeRecord("tiny", BUILD_ID, "passed").save(smoke)
    assert not smoke_is_current(tmp_path, "tiny")  # no inputs recorded: rerun
    smoke.write_text(json.dumps({"version": 2, "recipe": "tiny", "build_id": BUILD_ID}))
    assert not smoke_is_current(tmp_path, "tiny")
    assert build_is_current(tmp_path, "tiny")
