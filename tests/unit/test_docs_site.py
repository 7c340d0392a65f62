"""The documentation site builds strictly, and a broken link or anchor fails that build.

Each test copies ``mkdocs.yml``, ``docs/`` and ``CHANGELOG.md`` into a temporary directory and
runs mkdocs' own build in-process (``mkdocs.commands.build.build`` with ``strict``, as
``mkdocs build --strict`` does), so what is checked is the project's real configuration: its
``validation`` settings and the reference hook ``docs/gen_reference.py``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort

REPO = Path(__file__).resolve().parent.parent.parent


def _site(tmp_path: Path) -> Path:
    """A copy of the docs project in ``tmp_path``; returns its root."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "docs", root / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copy(REPO / "CHANGELOG.md", root / "CHANGELOG.md")
    return root


def _build(root: Path) -> None:
    config = load_config(config_file=str(root / "mkdocs.yml"), strict=True)
    config["site_dir"] = str(root / "site")
    build(config)


def test_the_docs_build_strictly_with_the_generated_reference(tmp_path: Path) -> None:
    root = _site(tmp_path)
    _build(root)
    commands = (root / "site" / "reference" / "commands" / "index.html").read_text()
    from envbuild.cli.verbs import VERBS

    missing = [v.name for v in VERBS if f'id="{v.name.replace("_", "-")}"' not in commands]
    assert missing == []
    records = (root / "site" / "reference" / "records" / "index.html").read_text()
    assert "build/state/&lt;name&gt;.promotion.json" in records
    from envbuild import records as record_classes

    classes = [
        name
        for name in record_classes.__all__
        if isinstance(getattr(record_classes, name), type) and name != "Record"
    ]
    assert [c for c in classes if f'id="{c.lower()}"' not in records] == []
    for page, schema in (("recipe", "recipe.json"), ("config", "envbuild-toml.json")):
        html = (root / "site" / "reference" / page / "index.html").read_text()
        keys = json.loads((REPO / "envbuild" / "schemas" / schema).read_text())["properties"]
        assert [k for k in keys if f'id="{k.lower().replace("_", "-")}"' not in html] == []


@pytest.mark.parametrize(
    "link",
    [
        "[gone](how-to/no-such-page.md)",
        "[no anchor](tutorial.md#no-such-heading)",
        "[generated page, no anchor](reference/commands.md#no-such-verb)",
    ],
)
def test_a_link_to_a_missing_page_or_anchor_fails_the_strict_build(
    tmp_path: Path, link: str
) -> None:
    root = _site(tmp_path)
    index = root / "docs" / "index.md"
    index.write_text(index.read_text() + f"\nSee {link}.\n")
    with pytest.raises(Abort, match="strict mode"):
        _build(root)


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_relative_links_of_the_repository_documents_exist(name: str) -> None:
    """README.md and CONTRIBUTING.md are read on the forge, outside mkdocs: their links to
    docs pages and files are checked here (anchors: by mkdocs, for links inside docs/)."""
    text = (REPO / name).read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t[0] != "#"]
    assert local, f"{name} links to no file"
    assert [t for t in local if not (REPO / t).exists()] == []


def _reference() -> ModuleType:
    """docs/gen_reference.py, imported as a module (it is a mkdocs hook, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "gen_reference", REPO / "docs" / "gen_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _key_paths(node: object, prefix: str = "") -> list[str]:
    """Every key a schema node declares, nested ones as ``a.b`` and keys of a list's entries
    as ``a[].b``, through ``properties``, ``items`` and ``additionalProperties``."""
    if not isinstance(node, dict):
        return []
    found = []
    for key, child in (node.get("properties") or {}).items():
        found += [prefix + key, *_key_paths(child, f"{prefix}{key}.")]
    if isinstance(node.get("items"), dict):
        found += _key_paths(node["items"], prefix.removesuffix(".") + "[]." if prefix else "")
    if isinstance(node.get("additionalProperties"), dict):
        found += _key_paths(node["additionalProperties"], f"{prefix}<key>.")
    return found


@pytest.mark.parametrize("name", ["recipe", "config"])
def test_the_reference_has_every_key_nested_ones_too(name: str) -> None:
    """Hostile review: ``dependencies: [{pip: [...]}]``'s ``pip`` (a key of a list's entries)
    had no section; every key at any depth has its own heading now."""
    gen = _reference()
    page = gen.schema_page(name)
    keys = _key_paths(gen._schema(name))
    assert len(keys) > 20
    assert [k for k in keys if not re.search(rf"^#+ `{re.escape(k)}` ", page, re.M)] == []


def test_the_reference_has_every_option_of_every_verb() -> None:
    from envbuild.cli.verbs import VERBS

    page = _reference().commands_page()
    sections = dict(re.findall(r"^### `(\w+)` \{#[\w-]+\}\n(.*?)(?=^##|\Z)", page, re.M | re.S))
    assert sorted(sections) == sorted(v.name for v in VERBS)
    missing = [(v.name, o.flag) for v in VERBS for o in v.options
               if f"| `{o.flag}` |" not in sections[v.name]]  # fmt: skip
    assert missing == []


def test_schema_text_with_markup_stays_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key, value, default or description holding backticks, HTML or Markdown is shown as
    text in the HTML mkdocs makes (Python-Markdown with the site's extensions)."""
    import markdown
    import yaml

    gen = _reference()
    plant = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    hostile = {
        "title": f"T{plant}",
        "properties": {
            f"k`{plant}": {"type": "string", "enum": [f"v`{plant}"],
                           "description": f"about `x` {plant}. Default: `{plant}`."},
            "outer": {"type": "array", "items": {"type": "object", "properties": {
                f"in``{plant}": {"type": "string", "description": plant}}}},
        },
    }  # fmt: skip
    monkeypatch.setattr(gen, "_schema", lambda name: hostile)
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    extensions = [e if isinstance(e, str) else next(iter(e)) for e in config["markdown_extensions"]]
    html = markdown.markdown(gen.schema_page("recipe"), extensions=extensions)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "outer[].in" in html


def test_every_runnable_marker_is_on_a_bash_fence() -> None:
    """A ``<!-- runnable -->`` marker not directly followed by a ```` ```bash ```` fence (a
    blank line between, ```` ```sh ````, ```` ```console ````) would never run: the test that
    runs the examples would not see it and nothing would say so."""
    stray = []
    for path in sorted((REPO / "docs").rglob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            if line.startswith("<!-- runnable") and lines[n + 1 : n + 2] != ["```bash"]:
                stray.append(f"{path.relative_to(REPO)}:{n + 1}")
            elif "<!-- runnable" in line and not line.startswith("<!-- runnable"):
                stray.append(f"{path.relative_to(REPO)}:{n + 1} (not at a line's start)")
    assert stray == []


def test_the_scripted_docs_build_is_strict_and_not_quiet() -> None:
    """Hostile review: scripts/test.sh ran ``mkdocs build --strict --quiet``; ``--quiet``
    sets the log level above WARNING, so strict mode saw no warning and a renamed heading
    that pages link to built with exit 0. The build there is strict and never quiet."""
    script = (REPO / "scripts" / "test.sh").read_text()
    builds = re.findall(r"^[^#\n]*mkdocs build[^\n]*$", script, re.M)
    assert builds and all("--strict" in b for b in builds)
    assert [b for b in builds if re.search(r"\s(-q|--quiet)\b", b)] == []


def test_pip_install_envbuild_is_not_promised_before_a_release() -> None:
    """Hostile review: README's and the tutorial's ``pip install envbuild`` failed for a new
    user (no release on PyPI; CHANGELOG.md says so): while CHANGELOG.md has no released
    version, both say how to install from a clone."""
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[\d+\.\d+\.\d+\]", changelog, re.M)
    for name in ("README.md", "docs/tutorial.md"):
        text = (REPO / name).read_text(encoding="utf-8")
        if "pip install envbuild" in text and not released:
            assert "not on PyPI yet" in text and "pip install ./envbuild" in text, name
