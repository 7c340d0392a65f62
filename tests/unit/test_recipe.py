from __future__ import annotations

from pathlib import Path

import pytest

from envbuild.errors import RecipeError
from envbuild.recipe.load import current_subdir, find_recipe, load_recipe

GOOD = """\
name: ml
channels: [conda-forge, bioconda]
dependencies: ["python 3.11.*", "numpy >=1.26,<3", scikit-learn]
smoke: {imports: [numpy, sklearn.linear_model], commands: ["python -V"]}
pack: {format: tar.gz, level: 5}
docker: {base_image: "debian:bookworm-slim", user: app, uid: 1234}
"""


def write(tmp_path: Path, text: str | bytes, name: str = "ml") -> Path:
    path = tmp_path / "recipes" / f"{name}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_good_recipe_parses(tmp_path: Path) -> None:
    r = load_recipe(write(tmp_path, GOOD))
    assert r.channels == ("conda-forge", "bioconda")
    assert r.dependencies == ("python 3.11.*", "numpy >=1.26,<3", "scikit-learn")
    assert r.smoke.imports == ("numpy", "sklearn.linear_model")
    assert (r.pack.format, r.pack.level) == ("tar.gz", 5)
    assert (r.docker.user, r.docker.uid) == ("app", 1234)


def test_defaults(tmp_path: Path) -> None:
    r = load_recipe(write(tmp_path, "dependencies: [python]\n"))
    assert r.name == "ml"
    assert r.channels == ("conda-forge",)
    assert r.platforms == (current_subdir(),)
    assert r.pack.format == "tar.zst"
    assert r.docker.user != "root"


BAD = [
    (
        "dependencie: [python]\n",
        r"ml\.yml: dependencie: unknown key \(did you mean 'dependencies'\?\)",
    ),
    (
        "dependencies: [python]\nsmoke: {imprts: [x]}\n",
        r"smoke\.imprts: unknown key \(did you mean 'imports'\?\)",
    ),
    (
        "dependencies: [python, 'numpy >=>1']\n",
        r"dependencies\[1\]: 'numpy >=>1' is not a valid match spec",
    ),
    (
        "dependencies: ['python 3.9.7']\n",
        r"'python 3.9.7' is not a valid match spec: missing range specifier.*Did you mean '==3.9.7'",
    ),
    (
        "dependencies: [python]\npypi-dependencies: ['requests >=>2']\n",
        r"pypi-dependencies\[0\]: 'requests >=>2' is not a valid PEP 508 requirement",
    ),
    (
        "dependencies: [python]\nvirtual_packages: {__cdua: '12'}\n",
        r"virtual_packages\.__cdua: unknown key \(did you mean '__cuda'\?\)",
    ),
    (
        "dependencies: numpy\n",
        r"dependencies: expected a list of match specs, got the string 'numpy'",
    ),
    (
        "dependencies: [python, 3]\n",
        r"dependencies\[1\]: expected a match spec or a \{pip: \[\.\.\.\]\} mapping, got 3",
    ),
    ("dependencies: []\n", r"dependencies: is empty"),
    ("channels: [conda-forge]\n", r"dependencies: missing"),
    (
        "dependencies: [python]\nplatforms: [linux64]\n",
        r"platforms\[0\]: unknown platform 'linux64' \(did you mean 'linux-64'\?\)",
    ),
    (
        "name: other\ndependencies: [python]\n",
        r"name: 'other' must match the file name \(ml\.yml\)",
    ),
    (
        "name: ../evil\ndependencies: [python]\n",
        r"name: '\.\./evil' is not a valid environment name",
    ),
    (
        "dependencies: [python]\nsmoke: {imports: ['not a module']}\n",
        r"smoke\.imports\[0\]: 'not a module' is not a Python module name",
    ),
    (
        "dependencies: [python]\npack: {format: tar.bz}\n",
        r"pack\.format: 'tar.bz' is not supported \(did you mean 'tar.gz'\?\)",
    ),
    (
        "dependencies: [python]\npack: {format: tar.gz, level: 12}\n",
        r"pack\.level: expected an integer from 1 to 9, got 12",
    ),
    (
        "dependencies: [python]\ndocker: {user: root}\n",
        r"docker\.user: 'root' is not a valid non-root user name",
    ),
    ("dependencies: [python\n", r"ml\.yml: invalid YAML at line \d+"),
    ("- just\n- a list\n", r"ml\.yml: expected a mapping, got list"),
    ("", r"ml\.yml: the recipe is empty"),
    (b"dependencies: [caf\xe9]\n", r"ml\.yml: not UTF-8 text"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_recipes(tmp_path: Path, text: str | bytes, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, text))


def test_missing_recipe_suggests_known_one(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    with pytest.raises(RecipeError, match=r"mll\.yml: no such recipe \(did you mean 'ml'\?\)"):
        find_recipe(tmp_path / "recipes", "mll", ["ml"])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "recipes" / "none.yml")
