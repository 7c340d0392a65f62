"""doit's console reporter, quiet where a command's stdout is data: a task run with ``--json``
(``doit status --json``, ``doit doctor prefix=PATH --json``) prints no ``.  <task>`` line
before its JSON, so ``envbuild status --json | jq`` reads JSON only; and a reader that goes
away (``envbuild status | head -1``) ends the output quietly, without a traceback. Everything
else is doit's default output (https://pydoit.org/cmd-run.html#reporter)."""

from __future__ import annotations

import os
import sys
from typing import Any

from doit.reporter import ConsoleReporter


class Reporter(ConsoleReporter):
    """:class:`doit.reporter.ConsoleReporter` without the title line of ``--json`` tasks, and
    silent once stdout is a closed pipe."""

    def execute_task(self, task: Any) -> None:
        if (getattr(task, "options", None) or {}).get("json"):
            return
        super().execute_task(task)

    def write(self, text: str) -> None:
        try:
            super().write(text)
        except BrokenPipeError:  # the reader left: say nothing more, anywhere on stdout
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            self.outstream = open(os.devnull, "w")  # noqa: SIM115 (lives as long as doit)
