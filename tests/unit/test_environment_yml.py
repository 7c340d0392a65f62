"""Issue 10: a conda environment.yml is a recipe (conda's spec forms, `- pip:`, variables,
nodefaults, prefix), variables reach smoke checks, the tarball's activation and the image, and
`doit export` writes an environment.yml and the explicit files back."""

from __future__ import annotations

from pathlib import Path

import pytest

from envbuild.errors import RecipeError
from envbuild.recipe.load import load_recipe

ENV_YML = """\
name: {name}
channels:
  - conda-forge
  - nodefaults
dependencies:
  - python=3.11
  - python-dateutil>=2.8,<3
  - conda-forge::six
  - pip
  - pip:
    - arrow>=1.3
variables:
  ENVBUILD_GREETING: hello from {name}
  ANSWER: 42
prefix: {prefix}
"""


def _env_yml(tmp_path: Path, name: str) -> str:
    """ENV_YML as conda would export environment ``name`` (its prefix: under ``tmp_path``)."""
    return ENV_YML.format(name=name, prefix=tmp_path / "miniconda3" / "envs" / name)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("spec", "normalised"),
    [
        ("numpy=1.26", "numpy 1.26.*"),
        ("python>=3.10,<3.12", "python >=3.10,<3.12"),
        ("conda-forge::pandas", "conda-forge::pandas"),
        ("numpy 1.26.*", "numpy 1.26.*"),
        ("scipy=1.11=py311*", "scipy ==1.11 py311*"),
    ],
)
def test_conda_spec_forms(tmp_path: Path, spec: str, normalised: str) -> None:
    import rattler

    path = _write(tmp_path, "forms", f"dependencies: ['{spec}']\n")
    (dep,) = load_recipe(path).dependencies
    assert str(rattler.MatchSpec(dep, strict=True)) == normalised  # what the solver gets


def test_environment_yml_fields(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="envbuild")
    r = load_recipe(_write(tmp_path, "sci", _env_yml(tmp_path, "sci")))
    assert r.channels == ("conda-forge",)  # nodefaults dropped
    assert r.dependencies == ("python=3.11", "python-dateutil>=2.8,<3", "conda-forge::six", "pip")
    assert r.pypi_dependencies == ("arrow>=1.3",)
    assert r.variables == (("ENVBUILD_GREETING", "hello from sci"), ("ANSWER", "42"))
    assert "prefix: ignored" in caplog.text


def test_envbuild_keys_in_an_environment_yml(tmp_path: Path) -> None:
    text = _env_yml(tmp_path, "sci") + "smoke:\n  imports: [dateutil]\npack: {format: tar.gz}\n"
    r = load_recipe(_write(tmp_path, "sci", text))
    assert r.smoke.imports == ("dateutil",) and r.pack.format == "tar.gz"


@pytest.mark.parametrize(
    ("entry", "key", "problem"),
    [
        ("-e .", "dependencies[1].pip[1]", "editable installs cannot be locked"),
        ("--editable=git+https://x/y", "dependencies[1].pip[1]", "editable installs"),
        ("./vendored/pkg", "dependencies[1].pip[1]", "local paths cannot be locked"),
        ("/opt/wheels/x-1.0-py3-none-any.whl", "dependencies[1].pip[1]", "local paths"),
        ("--index-url https://example.org/simple", "dependencies[1].pip[1]", "index options"),
        ("-r requirements.txt", "dependencies[1].pip[1]", "pip options are not supported"),
        ("git+https://github.com/x/y", "dependencies[1].pip[1]", "not a valid PEP 508"),
        ("requests @ https://x/y.whl", "dependencies[1].pip[1]", "direct URLs are not supported"),
    ],
)
def test_unsafe_pip_entries_name_the_line(
    tmp_path: Path, entry: str, key: str, problem: str
) -> None:
    text = f"dependencies:\n  - python\n  - pip:\n    - attrs\n    - '{entry}'\n"
    with pytest.raises(RecipeError) as e:
        load_recipe(_write(tmp_path, "bad", text))
    assert f"bad.yml: {key}: " in str(e.value) and problem in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dependencies: [python]\nvariables: [A]\n", "variables: expected a mapping"),
        ("dependencies: [python]\nvariables: {1A: x}\n", "variables.1A: not a valid"),
        ("dependencies: [python]\nvariables: {A: [1]}\n", "variables.A: expected a string"),
        ("dependencies: [python, {conda: [x]}]\n", "dependencies[1].conda: unknown key"),
        ("dependencies: [python, 3]\n", "dependencies[1]: expected a match spec or a {pip"),
        ("name: other\ndependencies: [python]\n", "save it as other.yml"),
    ],
)
def test_bad_environment_yml_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RecipeError, match=None) as e:
        load_recipe(_write(tmp_path, "env", text))
    assert message in str(e.value)
