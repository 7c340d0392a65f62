"""A lockfile is checked as a whole before anything is installed: tampering that its hashes
do not catch is refused, and every message names the file. Also: adopt never loses a recipe;
doctor keeps going past a malformed record and keeps the reports of prefixes apart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from envbuild.commands import stages
from envbuild.errors import EnvBuildError
from envbuild.install import build
from envbuild.prefix import doctor
from envbuild.recipe.load import current_subdir

from ..conftest import Project

PLAT = current_subdir()
Doc = dict[str, Any]


def _duplicate(doc: Doc) -> None:
    doc["package"].append(dict(doc["package"][0]))


def _foreign_platform(doc: Doc) -> None:
    doc["metadata"]["platforms"].append("osx-arm64")
    copy = dict(doc["package"][0], platform="osx-arm64")
    copy["url"] = copy["url"].replace(f"/{PLAT}/", "/osx-arm64/").replace("/noarch/", "/osx-arm64/")
    doc["package"].append(copy)


def _url(old: str, new: str) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        p = next(p for p in doc["package"] if p["manager"] == "conda")
        p["url"] = p["url"].replace(old, new, 1)

    return edit


def _empty(doc: Doc) -> None:
    doc["package"] = []


def _undeclared_platform(doc: Doc) -> None:
    doc["package"][0] = dict(doc["package"][0], platform="win-64")


TAMPERING = [
    ("a package listed twice", _duplicate, "is listed twice"),
    ("a platform the recipe lacks", _foreign_platform, "locked for osx-arm64, which"),
    ("a package for a platform not in metadata", _undeclared_platform, "is not in metadata"),
    ("/../ in a url", _url("/conda-forge/", "/conda-forge/x/../"), "normalises outside"),
    ("%2F in a url", _url("/conda-forge/", "/conda-forge/x%2F..%2F"), "normalises outside"),
    ("%2e%2e in a url", _url("/conda-forge/", "/conda-forge/x/%2e%2e/"), "normalises outside"),
    ("another subdir", _url(f"/{PLAT}/", "/osx-64/"), "subdir 'osx-64'"),
    ("an empty package list", _empty, f"no conda packages for platform {PLAT}"),
]


@pytest.fixture
def locked(project: Project) -> Project:
    project.doit("lock")
    return project


@pytest.mark.parametrize(("what", "edit", "message"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampered_lockfiles_are_refused_naming_the_file(
    locked: Project, what: str, edit: Callable[[Doc], None], message: str
) -> None:
    path = locked.root / "locks" / "tiny.conda-lock.yml"
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    project, recipe = stages.load(locked.root, "tiny")
    with pytest.raises(EnvBuildError, match=message) as e:
        build.checked_lockfile(recipe, project, path)
    assert "locks/tiny.conda-lock.yml" in str(e.value), what
    proc = locked.doit("build", check=False)
    assert proc.returncode != 0 and message in proc.stdout, what
    assert not (locked.root / "envs" / "tiny").exists()


def _fake_prefix(prefix: Path, records: dict[str, str]) -> Path:
    (prefix / "conda-meta").mkdir(parents=True)
    for name, text in records.items():
        (prefix / "conda-meta" / name).write_text(text)
    return prefix


def _record(name: str, files: tuple[str, ...] = ()) -> str:
    paths = [{"_path": f, "path_type": "hardlink", "sha256": "0" * 64, "size_in_bytes": 1}
             for f in files]  # fmt: skip
    return json.dumps(
        {"name": name, "version": "1", "build": "0", "build_number": 0, "subdir": PLAT,
         "depends": [], "channel": "https://conda.anaconda.org/conda-forge",
         "fn": f"{name}-1-0.conda", "files": list(files),
         "paths_data": {"paths": paths, "paths_version": 1},
         "url": f"https://conda.anaconda.org/conda-forge/{PLAT}/{name}-1-0.conda"}
    )  # fmt: skip


def test_adopt_keeps_the_old_recipe_when_the_new_one_does_not_lock(
    project: Project, tmp_path: Path
) -> None:
    recipe = project.root / "recipes" / "tiny.yml"
    before = recipe.read_bytes()
    prefix = _fake_prefix(tmp_path / "old", {"nopkg-zz-1-0.json": _record("nopkg-zz")})
    proc = project.doit("adopt", f"prefix={prefix}", "name=tiny", "force=1", check=False)
    assert proc.returncode != 0 and "nopkg-zz" in proc.stdout
    assert recipe.read_bytes() == before
    assert not (project.root / "locks" / "tiny.conda-lock.yml").exists()
    assert not list((project.root / "build" / "state").rglob("*.yml"))  # no staged copy left


def test_doctor_reports_a_malformed_record_and_goes_on(project: Project, tmp_path: Path) -> None:
    prefix = _fake_prefix(
        tmp_path / "env",
        {"bad-1-0.json": "{not json", "good-1-0.json": _record("good", ("lib/good.py",))},
    )
    findings = doctor.examine(prefix)
    kinds = {f.kind for f in findings}
    assert "malformed-record" in kinds and "half-installed" in kinds  # good's check still ran
    (bad,) = [f for f in findings if f.kind == "malformed-record"]
    assert bad.path == "conda-meta/bad-1-0.json"
    proc = project.doit("doctor", f"prefix={prefix}", check=False)
    assert proc.returncode != 0 and "malformed-record" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_doctor_reports_of_two_prefixes_with_one_name_are_kept_apart(
    project: Project, tmp_path: Path
) -> None:
    one = _fake_prefix(tmp_path / "a" / "env", {"one-1-0.json": _record("one")})
    two = _fake_prefix(tmp_path / "b" / "env", {"two-1-0.json": _record("two")})
    for prefix in (one, two, one):
        project.doit("doctor", f"prefix={prefix}", check=False)
    reports = sorted((project.root / "reports" / "doctor").glob("env-*.json"))
    assert len(reports) == 2
    assert {json.loads(r.read_text())["prefix"] for r in reports} == {str(one), str(two)}
