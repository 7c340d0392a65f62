"""The ``envbuild`` command (:mod:`envbuild.cli.entry`), its table of verbs
(:mod:`envbuild.cli.verbs`), help, shell completion and ``envbuild init``."""

from __future__ import annotations

from envbuild.cli.entry import doit_arguments, find_root, main, version
from envbuild.cli.scaffold import init, print_schema, schema_comment

__all__ = [
    "doit_arguments",
    "find_root",
    "init",
    "main",
    "print_schema",
    "schema_comment",
    "version",
]
