"""Issue 12: scheduler definitions. The workflow locks every platform in one job, builds only
where envbuild can build, and its merge step turns per-platform results into one lockfile per
recipe; systemd and cron definitions. Issue 28: the workflow is hardened (zizmor --offline
finds nothing of medium or higher), its actions are pinned by commit from one table, and it
installs the envbuild that wrote it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from envbuild import __version__
from envbuild.cli import init
from envbuild.errors import ConfigError
from envbuild.ops import actions, schedule
from envbuild.project import load_project
from envbuild.recipe.load import load_recipe

WORKFLOW = schedule.OUTPUTS["github-nightly.yml.j2"]
# uses: owner/repo@<40 hex> # vX[.Y[.Z]]
PINNED = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v\d+(?:\.\d+)*)$")


@pytest.fixture(scope="module")
def workflows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_workflows(tmp_path_factory)


def make_workflows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The workflow as `envbuild init --ci` writes it, and as `doit schedule` writes it with a
    publish job for GHCR and for another registry (in-process, no solve): variant -> path."""
    out = {}
    variants = [
        ("init", ""), ("ghcr", "ghcr.io/envbuild-org"), ("other", "registry.example.org:5000/team")
    ]  # fmt: skip
    for name, registry in variants:
        root = tmp_path_factory.mktemp(name)
        init(root, ci=not registry)
        if registry:
            toml = root / "envbuild.toml"
            toml.write_text(toml.read_text() + f'[publish]\nregistry = "{registry}"\n')
            project = load_project(root)
            recipes = [load_recipe(root / "recipes" / "example.yml", project.platforms)]
            (root / WORKFLOW).parent.mkdir(parents=True)
            (root / WORKFLOW).write_text(schedule.render(project, recipes)[root / WORKFLOW])
        out[name] = root / WORKFLOW
    return out


@pytest.mark.parametrize("variant", ["init", "ghcr"])
def test_every_action_is_pinned_from_the_table(workflows: dict[str, Path], variant: str) -> None:
    text = workflows[variant].read_text()
    lines = [ln for ln in text.splitlines() if re.match(r"\s*(- )?uses:", ln)]
    pins = [PINNED.match(ln) for ln in lines]
    assert lines and all(pins), [ln for ln, m in zip(lines, pins, strict=True) if not m]
    for m in filter(None, pins):
        assert actions.PINS[m[1]] == actions.Pin(m[1], m[3], m[2])
    steps = [s for j in yaml.safe_load(text)["jobs"].values() for s in j["steps"]]
    used = [s["uses"] for s in steps if "uses" in s]  # the YAML, comments dropped
    assert used == [f"{m[1]}@{m[2]}" for m in pins if m]
    assert {u.split("@")[0] for u in used} == set(actions.PINS)  # no stale entries


def test_a_pin_is_a_commit_sha_and_a_tag() -> None:
    with pytest.raises(ValueError, match="bad action pin"):
        actions.Pin("actions/checkout", "v4", "v4")


def test_only_the_pull_request_job_can_write(workflows: dict[str, Path]) -> None:
    flow = yaml.safe_load(workflows["ghcr"].read_text())
    assert flow["permissions"] == {"contents": "read"}
    writes = {
        name: {k for k, v in job.get("permissions", {}).items() if v == "write"}
        for name, job in flow["jobs"].items()
    }
    assert writes == {"lock": set(), "build": set(), "publish": {"packages"}, "merge": set(),
                      "pull-request": {"contents", "pull-requests"}}  # fmt: skip
    pr = flow["jobs"]["pull-request"]["steps"]
    assert not [s for s in pr if "run" in s]  # the writing job runs no Python package
    steps = [s for j in flow["jobs"].values() for s in j["steps"]]
    checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 5 and all(s["with"]["persist-credentials"] is False for s in checkouts)
    assert not [s["run"] for s in steps if "${{" in s.get("run", "")]


def test_workflow_installs_the_envbuild_that_wrote_it(workflows: dict[str, Path]) -> None:
    flow = yaml.safe_load(workflows["init"].read_text())
    installs = [s["run"] for j in flow["jobs"].values() for s in j["steps"]
                if s.get("name", "").startswith("Install envbuild")]  # fmt: skip
    assert installs == [f"python -m pip install envbuild=={__version__}"] * 3


def _lock_project(tmp_path: Path, lock: str | None) -> Any:
    (tmp_path / "envbuild.toml").write_text("")
    if lock is not None:
        (tmp_path / "requirements").mkdir()
        (tmp_path / schedule.REQUIREMENTS_LOCK).write_text(lock)
    return load_project(tmp_path)


def test_a_hashed_requirements_lock_is_installed_with_require_hashes(tmp_path: Path) -> None:
    lock = (f"# via uv\nclick==8.1.7 \\\n    --hash=sha256:{'a' * 64}\n"
            f"envbuild=={__version__} \\\n    --hash=sha256:{'b' * 64}\n    # via -r in\n")  # fmt: skip
    command = schedule.install_command(_lock_project(tmp_path, lock))
    assert command == "python -m pip install --require-hashes -r requirements/envbuild.txt"


@pytest.mark.parametrize(
    "lock",
    [
        "envbuild==0.0.1 --hash=sha256:" + "b" * 64 + "\n",  # another version
        f"envbuild=={__version__}\n",  # no hash
        "click==8.1.7 --hash=sha256:" + "a" * 64 + "\n",  # no envbuild at all
    ],
)
def test_a_requirements_lock_must_pin_this_envbuild_with_a_hash(tmp_path: Path, lock: str) -> None:
    with pytest.raises(ConfigError, match=rf"does not pin envbuild=={__version__} .* --hash="):
        schedule.install_command(_lock_project(tmp_path, lock))


def test_a_symlinked_requirements_lock_is_refused(tmp_path: Path) -> None:
    project = _lock_project(tmp_path, None)
    (tmp_path / "requirements").mkdir()
    (tmp_path / schedule.REQUIREMENTS_LOCK).symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="cannot be read"):
        schedule.install_command(project)


def test_envbuilds_own_checkout_installs_itself(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "envbuild"\n')
    assert schedule.install_command(_lock_project(tmp_path, None)) == "python -m pip install ."
