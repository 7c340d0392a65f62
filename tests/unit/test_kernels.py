"""Issue 11: a recipe may ask for a Jupyter kernel. It is registered after a build passed its
smoke checks, runs the environment's stable path (so rebuilds and rollbacks keep it working),
starts and executes code through jupyter_client, and gc removes it with its recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from envbuild.errors import RecipeError
from envbuild.recipe.load import load_recipe


def test_a_kernel_without_ipykernel_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nb.yml"
    path.write_text("dependencies: [python]\njupyter: {kernel: true}\n")
    with pytest.raises(RecipeError, match=r"nb\.yml: jupyter\.kernel: .*add 'ipykernel'"):
        load_recipe(path)
    path.write_text("dependencies: [python]\njupyter: {kernel: yes please}\n")
    with pytest.raises(RecipeError, match=r"jupyter\.kernel: expected true or false"):
        load_recipe(path)
