"""The JSON Schemas of envbuild.toml and recipes (envbuild/schemas/): what editors get, and
the messages the checker (envbuild/util/schema.py) makes of a document that breaks them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envbuild.channels import KNOWN_SUBDIRS
from envbuild.cli import init, main
from envbuild.project import line_of
from envbuild.util import schema

# draft 2020-12 keywords whose meaning draft 2019-09 (fastjsonschema's newest) shares, and ours
SHARED = {
    "$schema", "title", "description", "type", "properties", "additionalProperties",
    "propertyNames", "items", "enum", "const", "not", "pattern", "minimum", "maximum",
    "minItems", "x-expected", "x-name",
}  # fmt: skip


def _subschemas(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for key, sub in node.get("properties", {}).items():
        out += _subschemas(sub, f"{path}.{key}")
    for word in ("items", "additionalProperties", "propertyNames", "not"):
        if isinstance(node.get(word), dict):
            out += _subschemas(node[word], f"{path}/{word}")
    return out


@pytest.mark.parametrize("name", sorted(schema.NAMES))
def test_schemas_use_shared_keywords_and_describe_every_key(name: str) -> None:
    doc = schema.schema(name)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for path, node in _subschemas(doc):
        assert set(node) <= SHARED, (path, set(node) - SHARED)
    keys = [(p, n) for p, n in _subschemas(doc) if p and "/" not in p.rsplit(".", 1)[-1]]
    assert keys and all(n.get("description") for p, n in keys if "/" not in p), [
        p for p, n in keys if not n.get("description") and "/" not in p
    ]


def test_platform_enums_are_the_known_subdirs() -> None:
    recipe, config = schema.schema("recipe"), schema.schema("config")
    assert recipe["properties"]["platforms"]["items"]["enum"] == list(KNOWN_SUBDIRS)
    lock = config["properties"]["lock"]["properties"]
    assert lock["platforms"]["items"]["enum"] == list(KNOWN_SUBDIRS)


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (
            {"dependencies": ["python"], "smok": {}},
            "smok",
            "unknown key (did you mean 'smoke'?); known keys: name, ",
        ),
        (
            {"dependencies": "numpy"},
            "dependencies",
            "expected a list of match specs, got the string 'numpy' (write it as a list: [numpy])",
        ),
        ({"pack": {"level": 0}}, "pack.level", "expected an integer from 1 to 19, got 0"),
        (
            {"pack": {"format": "zip"}},
            "pack.format",
            "'zip' is not supported; use one of tar.zst, tar.gz",
        ),
        (
            {"platforms": ["linux64"]},
            "platforms[0]",
            "unknown platform 'linux64' (did you mean 'linux-64'?)",
        ),
        ({"docker": {"user": "root"}}, "docker.user", "'root' is not a valid non-root user name"),
        (
            {"docker": {"user": "app\n"}},
            "docker.user",
            "'app\\n' is not a valid non-root user name",
        ),
        ({"variables": {"1A": "x"}}, "variables.1A", "not a valid environment variable name"),
        ({"smoke": {3: "x"}}, "smoke", "keys must be strings, got 3"),
    ],
)
def test_recipe_problems_name_the_key_path_and_the_fix(
    data: object, path: str, message: str
) -> None:
    problem = schema.check("recipe", data)
    assert problem is not None and problem.path == path
    assert problem.message.startswith(message), problem.message


def test_a_hostile_key_is_shown_escaped_and_cut() -> None:
    problem = schema.check("recipe", {"x\ny" * 20: 1})
    assert problem is not None and problem.message.startswith("unknown key; known keys: ")
    assert "\n" not in problem.path and len(problem.path) == 40 and problem.path.endswith("...")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("recipe", {"variables": {"\x1b[31mred\u202e": [1]}}),  # a type error below the key
        ("config", {"mirrors": {"\x1b[31mred\u202e": 3}}),
    ],
)
def test_a_hostile_key_in_a_key_path_is_escaped(name: str, data: dict[str, Any]) -> None:
    """A key that reaches the path of a type error (not an unknown key) is escaped too: ESC
    and a bidi override never reach the terminal."""
    problem = schema.check(name, data)
    assert problem is not None
    assert problem.path.endswith(".\\x1b[31mred\\u202e"), problem.path


def test_envbuild_toml_messages_escape_a_hostile_key(tmp_path: Path) -> None:
    from envbuild.errors import ConfigError
    from envbuild.project import load_project

    (tmp_path / "envbuild.toml").write_text('[mirrors]\n"\\u001b[31mx" = "https://u:p@h/c"\n')
    with pytest.raises(ConfigError) as e:
        load_project(tmp_path)
    assert "mirrors.\\x1b[31mx: has" in str(e.value)
    assert "\x1b" not in str(e.value)


def test_a_valid_document_has_no_problem() -> None:
    assert schema.check("recipe", {"dependencies": ["python", {"pip": ["six"]}]}) is None
    assert schema.check("config", {"builds": {"keep": 2}}, table="a table") is None
    problem = schema.check("config", {"lock": 1}, table="a table")
    assert problem == schema.Problem("lock", "expected a table, got 1")


def test_line_of_finds_keys_inside_their_table() -> None:
    text = '[mirrors]\nplatforms = "x"\n\n[lock]\n# platforms\n  platforms = []\n[image.x]\n'
    assert line_of(text, "lock.platforms[0]") == 6
    assert line_of(text, "lock.channel_alias") == 4  # not set: the table
    assert line_of(text, "image") == 7
    assert line_of(text, "nightly.mode") is None
    assert line_of("publish.registry = 'x'\n", "publish.registry") == 1
    assert line_of(text, "") is None


def test_init_points_the_recipe_at_the_schema(tmp_path: Path) -> None:
    init(tmp_path)
    first = (tmp_path / "recipes" / "example.yml").read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=file:///")
    assert Path(first.split("file://", 1)[1]) == schema.schema_file("recipe")


def test_schema_command_prints_the_packaged_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "config"]) == 0
    assert json.loads(capsys.readouterr().out) == schema.schema("config")
    assert main(["schema", "recipe", "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(schema.schema_file("recipe"))
    assert main(["schema", "recipes"]) == 2
    assert "usage: envbuild schema recipe|config" in capsys.readouterr().err
