"""The reference pages, generated from the code on every ``mkdocs build`` so they cannot drift.

A mkdocs hook (``hooks:`` in mkdocs.yml; https://www.mkdocs.org/user-guide/configuration/#hooks):
:func:`on_files` adds four pages that exist only in the build, never in the repository:

* ``reference/commands.md``: every verb of ``envbuild`` with its arguments and options, from
  the one table of verbs (:data:`envbuild.cli.verbs.VERBS`), its usage line and doit
  equivalent as ``envbuild VERB --help`` prints them (:mod:`envbuild.cli.help`);
* ``reference/recipe.md`` and ``reference/config.md``: every recipe and ``envbuild.toml`` key,
  from the JSON Schemas shipped in the package (``envbuild/schemas/*.json``): title,
  description, type, allowed values, default;
* ``changelog.md``: the repository's ``CHANGELOG.md`` (one file, shown in the site too);
* ``reference/records.md``: every JSON record envbuild keeps, from the record classes
  (:mod:`envbuild.records`): the class docstring (which names the file), its fields with
  their types and defaults, its version and what to do with a damaged one.

Run as a script (``python docs/gen_reference.py OUTDIR``) it writes the same pages to OUTDIR,
to read them without mkdocs.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from envbuild import records
from envbuild.cli import help as helptext
from envbuild.cli.verbs import GLOBAL, GROUPS, VERBS, Option, Verb

GENERATED = "<!-- made by docs/gen_reference.py from the code: edit the code, not this page -->"
_ROLE = re.compile(r":(?:mod|class|func|meth|data|attr):`~?([^`]+)`")


def _md(text: str) -> str:
    """A docstring's reStructuredText inline markup as Markdown: ````x```` -> `x`,
    ``:class:`a.B``` -> `a.B`; paragraphs kept, lines inside a paragraph joined."""
    text = _ROLE.sub(r"`\1`", inspect.cleandoc(text)).replace("``", "`")
    paragraphs = re.split(r"\n\s*\n", text)
    out = []
    for p in paragraphs:
        lines = p.splitlines()
        if any(ln.lstrip().startswith(("* ", "- ")) for ln in lines):
            out.append(re.sub(r"\n\s+(?![*-] )", " ", p))  # a list: join continuation lines
        else:
            out.append(" ".join(ln.strip() for ln in lines))
    return _escape("\n\n".join(out))


def _escape(text: str) -> str:
    """``<`` and ``>`` outside backtick spans as entities (``<name>`` is not an HTML tag)."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(
        p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;") for p in parts
    )


def _code(text: str) -> str:
    """``text`` as one Markdown code span, whatever backticks it holds (CommonMark: a fence
    longer than any run inside it, padded with spaces), so nothing in it is markup or HTML."""
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if runs or text[:1] == " " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    """Text for one Markdown table cell."""
    return _escape(text.replace("|", "\\|").replace("\n", " "))


# --- commands -------------------------------------------------------------------------------


def _option_row(o: Option) -> str:
    value = f"`{o.metavar}`" if o.metavar else "(switch)"
    doit = f"`{o.doit}={o.metavar or 1}`" if o.doit else f"`{o.flag}` (passed as is)"
    required = " (required)" if o.required else ""
    return f"| `{o.flag}` | {value}{required} | {_cell(o.help)} | {doit} |"


def _verb_section(v: Verb) -> Iterator[str]:
    yield f"### `{v.name}` {{#{v.name.replace('_', '-')}}}"
    yield ""
    yield v.summary[:1].upper() + v.summary[1:] + "."
    yield ""
    yield "```text"
    yield helptext.usage(v)
    yield "```"
    yield ""
    if v.names:
        yield "`NAME...`: recipes (`recipes/NAME.yml`); none: every recipe."
        yield ""
    if v.args:
        choices = f" (one of {', '.join(f'`{c}`' for c in v.choices)})" if v.choices else ""
        what = f": {_escape(v.args_help)}" if v.args_help and not v.choices else ""
        yield f"`{v.args}`{choices}{what}."
        yield ""
    if v.options:
        yield "| option | value | what it does | doit spelling |"
        yield "| --- | --- | --- | --- |"
        yield from (_option_row(o) for o in v.options)
        yield ""
    if v.kind == "task":
        yield f"Make-style equivalent: `{helptext.doit_equivalent(v)}`."
        yield ""


def commands_page() -> str:
    """``reference/commands.md``: the verbs by group, as the table declares them."""
    lines = [
        "# Commands",
        "",
        GENERATED,
        "",
        "Every command is `envbuild VERB [NAME...] [--option [VALUE]]`. This page is made from",
        "envbuild's table of verbs (`envbuild/cli/verbs.py`), the same table `envbuild --help`,",
        "`envbuild VERB --help`, the did-you-mean and the shell completion are made from. What",
        "each stage does in detail: [What each command does](../explanation/stages.md).",
        "",
        "In a project, `doit VERB env=NAME[,NAME] key=value` (through the `dodo.py` that",
        "`envbuild init` writes) is the make-style equivalent of `envbuild VERB NAME... --key",
        "value`; each verb below names its doit spelling. doit's own commands (`list`, `info`,",
        "`forget`, `clean`, ...) pass through unchanged: `envbuild list` is `doit list`.",
        "doit's run options (`-a`, `-n N`, `--continue`, ...) may follow the verb.",
        "",
        "Exit status: 0 done; 1 something failed (a task, or one it needs), with one line",
        "saying what; 2 a command line off the grammar (an unknown verb, option or variable, a",
        "missing value or required option), with one line and a did-you-mean where one is close.",
        "",
        "## Global options",
        "",
        "| option | what it does |",
        "| --- | --- |",
        *(f"| `{o.flag}` | {_cell(o.help)} |" for o in GLOBAL),
        "",
    ]
    for group, title in GROUPS.items():
        verbs = [v for v in VERBS if v.group == group]
        if not verbs:
            continue
        lines += [f"## {title}", ""]
        for v in verbs:
            lines += list(_verb_section(v))
    return "\n".join(lines)


# --- schemas --------------------------------------------------------------------------------

SCHEMAS = {"recipe": "recipe.json", "config": "envbuild-toml.json"}
_DEFAULT = re.compile(r"\s*Default:\s*(.+?)\.(?:\s|$)")


def _schema(name: str) -> dict[str, Any]:
    text = resources.files("envbuild").joinpath("schemas", SCHEMAS[name]).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _type(node: dict[str, Any]) -> str:
    kind = node.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    words = []
    for k in kinds:
        if k == "array" and isinstance(node.get("items"), dict):
            inner = node["items"]
            inner_kind = inner.get("type", "any")
            inner_kind = " or ".join(inner_kind) if isinstance(inner_kind, list) else inner_kind
            words.append(f"array of {inner_kind}")
        else:
            words.append(str(k))
    return " or ".join(words)


def _values(node: dict[str, Any]) -> str:
    enum = node.get("enum") or (node.get("items") or {}).get("enum")
    if enum:
        return ", ".join(_code(json.dumps(e)) for e in enum)
    for key in ("minimum", "maximum"):
        if key in node:
            return f"{node.get('minimum', '')}..{node.get('maximum', '')}"
    return _cell(node.get("x-expected", ""))


def _sections(properties: dict[str, Any], prefix: str, level: int) -> Iterator[str]:
    """One heading per key (``paths.recipes``, anchor ``paths-recipes``): its type, allowed
    values and default on one line, then its description; nested tables below their key."""
    for key, node in properties.items():
        path = f"{prefix}{key}"
        description = node.get("description", "")
        found = _DEFAULT.search(description)
        facts = [f"**type:** {_type(node)}"]
        if found:
            facts.append(f"**default:** {_code(found.group(1))}")
            description = (description[: found.start()] + " " + description[found.end() :]).strip()
        values = _values(node)
        if values:
            facts.append(f"**values:** {values}")
        anchor = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
        yield f"{'#' * level} {_code(path)} {{#{anchor}}}"
        yield ""
        yield " · ".join(facts)
        yield ""
        if description:
            yield _escape(description)
            yield ""
        if isinstance(node.get("properties"), dict):
            yield from _sections(node["properties"], f"{path}.", min(level + 1, 4))
        items = node.get("items")
        if isinstance(items, dict) and isinstance(items.get("properties"), dict):
            # keys of a list's mapping entries (dependencies: - pip: [...])
            yield from _sections(items["properties"], f"{path}[].", min(level + 1, 4))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("description"):
            yield f"Each {_code(path + '.<key>')}: {_type(extra)}. {_escape(extra['description'])}"
            yield ""


def schema_page(name: str) -> str:
    """``reference/recipe.md`` or ``reference/config.md``: one row per key of the packaged
    schema (nested tables as dotted paths)."""
    data = _schema(name)
    command = "recipe" if name == "recipe" else "config"
    head = "Recipes" if name == "recipe" else "envbuild.toml"
    return "\n".join(
        [
            f"# {head}",
            "",
            GENERATED,
            "",
            f"**{_escape(data['title'])}.** {_cell(data.get('description', ''))}",
            "",
            f"Made from the JSON Schema shipped in the package (`envbuild/schemas/"
            f"{SCHEMAS[name]}`, draft 2020-12); `envbuild schema {command}` prints it and",
            f"`envbuild schema {command} --path` says where it is, for your editor",
            "([Schemas in your editor](../how-to/editor.md)). Unknown keys are refused with a",
            "did-you-mean.",
            "",
            *_sections(data["properties"], "", 2),
            "",
        ]
    )


# --- records --------------------------------------------------------------------------------


def _record_classes() -> list[type[records.Record]]:
    found = []
    for name in records.__all__:
        obj = getattr(records, name)
        if isinstance(obj, type) and issubclass(obj, records.Record) and obj is not records.Record:
            found.append(obj)
    return found


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{json.dumps(f.default)}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{json.dumps(f.default_factory())}`"
    return "required"


def records_page() -> str:
    """``reference/records.md``: every record class: docstring, version, fields."""
    base = sys.modules[records.Record.__module__]
    from envbuild import layout

    lines = [
        "# Records: the JSON files envbuild keeps",
        "",
        GENERATED,
        "",
        "Every JSON file envbuild writes to remember something is one class of",
        "`envbuild.records`; the sections below are made from those classes. What the other",
        "files are (lockfiles, tarballs, images, SBOMs, reports): [Artifacts](artifacts.md).",
        "",
        "## Versions and damaged records",
        "",
        _md(base.__doc__ or "").split("\n\n", 1)[1],
        "",
        "## Where they live",
        "",
        "Each record's own section names its file; `envbuild/layout.py` lists them:",
        "",
        _md(layout.__doc__ or "")[_md(layout.__doc__ or "").index("* ") :],
        "",
    ]
    for cls in _record_classes():
        lines += [
            f"## {cls.__name__} {{#{cls.__name__.lower()}}}",
            "",
            _md(cls.__doc__ or ""),
            "",
            f"*{cls.WHAT}*, version {cls.VERSION}. If damaged: {cls.FIX}.",
            "",
            "| key | type | default |",
            "| --- | --- | --- |",
            *(
                f"| `{f.name}` | `{_cell(str(f.type))}` | {_default(f)} |"
                for f in dataclasses.fields(cls)
            ),
            "",
        ]
    return "\n".join(lines)


def changelog_page() -> str:
    """``changelog.md``: the repository's CHANGELOG.md, as is."""
    return (Path(__file__).resolve().parent.parent / "CHANGELOG.md").read_text(encoding="utf-8")


PAGES: dict[str, Callable[[], str]] = {
    "reference/commands.md": commands_page,
    "reference/recipe.md": lambda: schema_page("recipe"),
    "reference/config.md": lambda: schema_page("config"),
    "reference/records.md": records_page,
    "changelog.md": changelog_page,
}


def on_files(files: Any, config: Any) -> Any:
    """mkdocs hook: add the generated pages to the site's files (before the nav is built)."""
    from mkdocs.structure.files import File

    for path, make in PAGES.items():
        files.append(File.generated(config, path, content=make()))
    return files


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/reference")
    for path, make in PAGES.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(make() + "\n", encoding="utf-8")
        print(target)
