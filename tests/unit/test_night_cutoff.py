"""The nightly's cutoff from an injected clock: whole seconds, rounded up; a configured
``exclude-newer`` wins. (Tests of nightlies need no sleep between runs: the test channels'
packages carry fixed 2023 timestamps, so no cutoff of today hides them, and build ids carry
milliseconds.)"""

from __future__ import annotations

from pathlib import Path

from envbuild.ops.nightly import night_cutoff
from envbuild.project import load_project
from envbuild.recipe.load import load_recipe

RECIPE = "name: {name}\nchannels: [conda-forge]\ndependencies: [python 3.11.*]\n"


def _recipe_and_project(root: Path, toml: str = "", extra: str = ""):  # type: ignore[no-untyped-def]
    (root / "recipes").mkdir(parents=True)
    (root / "envbuild.toml").write_text(toml)
    path = root / "recipes" / "tiny.yml"
    path.write_text(RECIPE.format(name="tiny") + extra)
    project = load_project(root)
    return load_recipe(path, project.platforms), project


def test_the_cutoff_is_now_rounded_up_to_a_whole_second(tmp_path: Path) -> None:
    recipe, project = _recipe_and_project(tmp_path)
    assert night_cutoff(recipe, project, now=1_700_000_000.0) == "2023-11-14T22:13:20Z"
    assert night_cutoff(recipe, project, now=1_700_000_000.001) == "2023-11-14T22:13:21Z"
    # two nights within one second share a cutoff; a second later they do not
    assert night_cutoff(recipe, project, now=1_700_000_000.2) == night_cutoff(
        recipe, project, now=1_700_000_000.9
    )
    assert night_cutoff(recipe, project, now=1_700_000_001.2) == "2023-11-14T22:13:22Z"


def test_a_configured_exclude_newer_wins_over_the_clock(tmp_path: Path) -> None:
    recipe, project = _recipe_and_project(tmp_path, extra="exclude-newer: 2024-01-02\n")
    assert night_cutoff(recipe, project, now=1_700_000_000.5).startswith("2024-01-02")
