"""The documentation site builds strictly, and a broken link or anchor fails that build.

Each test copies ``mkdocs.yml``, ``docs/`` and ``CHANGELOG.md`` into a temporary directory and
runs mkdocs' own build in-process (``mkdocs.commands.build.build`` with ``strict``, as
``mkdocs build --strict`` does), so what is checked is the project's real configuration: its
``validation`` settings and the reference hook ``docs/gen_reference.py``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

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
