"""The plain-text help of ``envbuild --help`` and ``envbuild VERB --help``, generated from the
table of verbs (:mod:`envbuild.cli.verbs`)."""

from __future__ import annotations

import textwrap

from envbuild.cli.verbs import GLOBAL, GROUPS, VERBS, Option, Verb

WIDTH = 92
COLUMN = 22  # where a summary starts

INTRO = """\
envbuild declares conda environments as recipes (recipes/NAME.yml), locks them, builds,
tests, packs and publishes them, and pulls them on other machines. NAME is a recipe; a
stage given none runs for every recipe. The project is the nearest directory, upwards from
here, holding envbuild.toml."""

EQUIVALENT = """\
In a project, `doit VERB env=NAME[,NAME] key=value` (with the dodo.py `envbuild init`
writes) is the make-style equivalent of `envbuild VERB NAME... --key value`."""


def _row(left: str, text: str) -> str:
    """``  left      text``, the text wrapped under its column."""
    first = f"  {left}".ljust(COLUMN - 1) + " "
    if len(first) > COLUMN:  # a long left column: the text on the next line
        first = f"  {left}\n" + " " * COLUMN
    return first + textwrap.fill(text, WIDTH - COLUMN, subsequent_indent=" " * COLUMN)


def _usage_word(option: Option) -> str:
    """``--prefix PATH`` for a required option, ``[--json]`` for another."""
    return _left(option) if option.required else f"[{_left(option)}]"


def _left(option: Option) -> str:
    short = {"--help": "-h, ", "--quiet": "-q, "}.get(option.flag, "")
    return f"{short}{option.flag}" + (f" {option.metavar}" if option.metavar else "")


def usage(v: Verb) -> str:
    """``usage: envbuild lock [NAME...] [--update PKG[,PKG]]``."""
    words = ["envbuild", v.name, *(["[NAME...]"] if v.names else []), *([v.args] if v.args else [])]
    words += [_usage_word(o) for o in v.options]
    return "usage: " + textwrap.fill(" ".join(words), WIDTH - 7, subsequent_indent=" " * 7)


def doit_equivalent(v: Verb) -> str:
    """The same command in doit's spelling: ``doit lock env=NAME,NAME update=PKG[,PKG]``."""
    words = ["doit", v.name, *(["env=NAME[,NAME]"] if v.names else [])]
    for o in v.options:
        if o.doit:
            words.append(f"{o.doit}={o.metavar or 1}")
        else:
            words.append(f"[{o.flag}{' ' + o.metavar if o.metavar else ''}]")
    return " ".join(words)


def verb_help(v: Verb) -> str:
    """``envbuild VERB --help``: usage, summary, arguments, options and, for a task, the
    doit equivalent."""
    lines = [usage(v), "", v.summary[:1].upper() + v.summary[1:] + ".", ""]
    if v.names or v.args:
        lines.append("arguments:")
        if v.names:
            lines.append(_row("NAME...", "recipes (recipes/NAME.yml); none: every recipe"))
        if v.args:
            lines.append(
                _row(v.args, "one of " + ", ".join(v.choices) if v.choices else v.args_help)
            )
        lines.append("")
    lines.append("options:")
    lines += [_row(_left(o), o.help) for o in v.options]
    lines.append(_row("-h, --help", "this text"))
    if v.kind == "task":
        lines += ["", f"make-style equivalent: {doit_equivalent(v)}"]
    return "\n".join(lines).rstrip()


def overview(doit_summaries: dict[str, str]) -> str:
    """``envbuild --help``: every verb of the table by group, doit's own commands with
    ``doit_summaries`` (``{name: what doit says it does}``), the global options."""
    lines = ["usage: envbuild VERB [NAME...] [--option [VALUE]]", "", INTRO]
    for group, title in GROUPS.items():
        if group == "doit":
            rows = [_row(name, text) for name, text in doit_summaries.items()]
        else:
            rows = [_row(v.name, v.summary) for v in VERBS if v.group == group]
        lines += ["", f"{title}:", *rows]
    lines += ["", "options:", *(_row(_left(o), o.help) for o in GLOBAL)]
    lines += ["", "`envbuild VERB --help` shows a verb's options.", EQUIVALENT]
    return "\n".join(lines)
