"""Names cannot escape the project; channel credentials never reach files, logs or images."""

from __future__ import annotations

from pathlib import Path

import pytest

from envbuild.errors import ConfigError, RecipeError
from envbuild.project import load_project
from envbuild.recipe.load import find_recipe


@pytest.mark.parametrize(
    "name", ["../evil", "/etc/passwd", "a/b", "x\x00y", "..", ".hidden", "a\\b", "", "x" * 65]
)
def test_environment_names_cannot_escape(tmp_path: Path, name: str) -> None:
    with pytest.raises(RecipeError, match="is not a valid environment name"):
        find_recipe(tmp_path, name, [])


@pytest.mark.parametrize(
    "url",
    ["https://user:hunter2@example.com/conda-forge", "https://example.com/t/abc123/conda-forge"],
)
def test_literal_credentials_are_refused(tmp_path: Path, url: str) -> None:
    (tmp_path / "envbuild.toml").write_text(f'[mirrors]\nconda-forge = "{url}"\n')
    with pytest.raises(
        ConfigError, match=r"mirrors\.conda-forge: has .* write it as \$\{VAR\}"
    ) as e:
        load_project(tmp_path)  # when envbuild.toml is read, before any task
    assert "hunter2" not in str(e.value) and "abc123" not in str(e.value)
    assert str(tmp_path / "envbuild.toml") in str(e.value)
