"""Property-based: malformed recipe documents end in RecipeError naming the file (and the key
path where there is one), never in another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envbuild.errors import RecipeError
from envbuild.recipe.load import Recipe, load_recipe

KNOWN = [
    "name",
    "extends",
    "channels",
    "platforms",
    "dependencies",
    "pypi-dependencies",
    "virtual_packages",
    "smoke",
    "pack",
    "docker",
    "imports",
    "commands",
    "format",
    "level",
    "base_image",
    "user",
    "uid",
    "prefix",
    "__cuda",
    "__glibc",
]
TYPOS = ["dependecies", "channel", "platform", "smok", "Dependencies", "pypi_dependencies"]
SPECS = [
    "python",
    "numpy >=1.2",
    "numpy >=>1",
    "python 3.9.7",
    "pkg[version='>1']",
    "*",
    "",
    " ",
    "::",
    "conda-forge::numpy",
    "numpy ==1.0 py_0",
    "a" * 300,
    "numpy <1,>2",
    "numpy=1.2=*",
    "numpy 1.*.*",
    "@foo",
    "numpy[build=*] >1",
    "../x",
    "x\x00y",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.sampled_from(SPECS)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(KNOWN + TYPOS) | st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
documents = st.one_of(
    st.dictionaries(st.sampled_from(KNOWN + TYPOS), values, max_size=8),
    st.fixed_dictionaries(
        {"dependencies": st.lists(st.sampled_from(SPECS) | values, max_size=5)},
        optional={k: values for k in KNOWN[:10] if k != "dependencies"},
    ),
    values,
)
SNIPPETS = [
    b"dependencies: [python]\ndependencies: [numpy]\n",  # duplicate key
    b"a: &x [1, 2]\nb: *x\ndependencies: *x\n",  # aliases
    b"x: &a [a, a, a]\ny: &b [*a, *a, *a]\nz: &c [*b, *b, *b]\ndependencies: [*c, *c]\n",
    b"dependencies: [" * 2000 + b"]" * 2000,  # deeply nested
    b"dependencies: 2024-13-45\n",  # impossible timestamp
    b"? [a, b]\n: c\n",  # complex key
    b"\xff\xfe\x00dependencies",  # not UTF-8
    b"dependencies: [python]\nname: !!python/object:os.system x\n",  # unsafe tag
    b"\tdependencies: [python]\n",  # tab indentation
    b"dependencies: [python]\nsmoke: {imports: [os]}\nsmoke: {}\n",
    b"dependencies:\n  - " + b"x" * (1 << 20) + b"\n",  # over the size limit
]


def _check(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipes" / "fuzz.yml"
        path.parent.mkdir()
        path.write_bytes(data)
        try:
            recipe = load_recipe(path)
        except RecipeError as e:
            assert str(e).startswith(str(path)), str(e)[:200]
            assert len(str(e)) < 4000
        else:
            assert isinstance(recipe, Recipe)


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck))
@given(documents)
def test_malformed_documents_end_in_recipe_error(doc: object) -> None:
    _check(yaml.safe_dump(doc, allow_unicode=True).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300) | st.sampled_from(SNIPPETS))
def test_malformed_bytes_end_in_recipe_error(data: bytes) -> None:
    _check(data)


def test_hostile_snippets_each_end_in_recipe_error() -> None:
    for snippet in SNIPPETS:
        _check(snippet)


def test_duplicate_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "d.yml"
    path.write_bytes(SNIPPETS[0])
    try:
        load_recipe(path)
    except RecipeError as e:
        assert "duplicate key 'dependencies'" in str(e) and "line 2" in str(e)
    else:
        raise AssertionError("duplicate key accepted")
