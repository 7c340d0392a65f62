"""Issue 8: a lockfile is a contract that holds on every machine: portable (canonical channels,
no machine paths, stable platforms), hash-enforced (whatever the URL scheme and the package
cache hold), and bad input gives a message, never a traceback or a half-built environment."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-31", "2026-01-31T00:00:00Z"),
        ("'2026-01-31'", "2026-01-31T00:00:00Z"),
        ("2026-01-31T12:00:00+02:00", "2026-01-31T10:00:00Z"),
        ("'2026-01-31T12:00:00Z'", "2026-01-31T12:00:00Z"),
    ],
)
def test_exclude_newer_is_a_utc_cutoff(tmp_path: Path, value: str, expected: str) -> None:
    from envbuild.recipe.load import load_recipe

    (tmp_path / "r.yml").write_text(f"dependencies: [python]\nexclude-newer: {value}\n")
    assert load_recipe(tmp_path / "r.yml").exclude_newer == expected


@pytest.mark.parametrize("value", ["yesterday", "'2026-01-31T12:00:00'", "42"])
def test_bad_exclude_newer_says_how_to_write_it(tmp_path: Path, value: str) -> None:
    from envbuild.errors import RecipeError
    from envbuild.recipe.load import load_recipe

    (tmp_path / "r.yml").write_text(f"dependencies: [python]\nexclude-newer: {value}\n")
    with pytest.raises(RecipeError, match=r"r\.yml: exclude-newer: .* write e\.g\. 2026-01-31"):
        load_recipe(tmp_path / "r.yml")
