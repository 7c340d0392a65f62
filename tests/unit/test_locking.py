"""Issue 3: multi-platform locks, virtual packages, update=, diffs, conflicts, layers, check."""

from __future__ import annotations

from pathlib import Path

import pytest

from envbuild.errors import RecipeError
from envbuild.recipe.load import load_recipe


def test_diff_kinds() -> None:
    from conda_lock.lockfile.v1.models import HashModel, LockMeta
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile

    from envbuild.lock import diff as lockdiff

    def lf(pkgs: list[tuple[str, str, str]]) -> Lockfile:
        return Lockfile(
            package=[
                LockedDependency(
                    name=n,
                    version=v,
                    build=b,
                    manager="conda",
                    platform="linux-64",
                    url="u",
                    hash=HashModel(md5="0" * 32),
                )
                for n, v, b in pkgs
            ],
            metadata=LockMeta(content_hash={}, channels=[], platforms=["linux-64"], sources=[]),
        )

    old = lf([("a", "1.0", "0"), ("b", "2.0", "0"), ("c", "1.10", "0"), ("d", "1", "0")])
    new = lf([("a", "1.0", "1"), ("b", "1.9", "0"), ("c", "1.9.1", "0"), ("e", "1", "0")])
    kinds = {c.name: c.kind for c in lockdiff.diff(old, new)}
    assert kinds == {
        "a": "rebuilt",
        "b": "downgraded",
        "c": "downgraded",
        "d": "removed",
        "e": "added",
    }


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"a": "extends: b\ndependencies: [x]\n", "b": "extends: a\ndependencies: [y]\n"},
            r"extends: cycle of recipes: a -> b -> a",
        ),
        (
            {"a": "extends: bse\ndependencies: [x]\n", "base": "dependencies: [y]\n"},
            r"a\.yml: extends\[0\]: no recipe 'bse' .*\(did you mean 'base'\?\)",
        ),
    ],
)
def test_extends_errors(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / f"{name}.yml").write_text(text)
    with pytest.raises(RecipeError, match=message):
        load_recipe(tmp_path / "a.yml")
