"""envbuild's log handler follows ``sys.stderr`` (found under pytest-xdist: a handler set up
while one test captured stderr wrote to that closed capture in a later test)."""

from __future__ import annotations

import io
import logging

import pytest

from envbuild.util.log import setup_logging


def test_messages_go_to_stderr_as_it_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    log = logging.getLogger("envbuild")
    monkeypatch.setattr(log, "handlers", [])  # restored after the test, with these two
    monkeypatch.setattr(log, "propagate", log.propagate)
    monkeypatch.setattr(log, "level", log.level)
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    setup_logging()
    first.close()  # the stream logging was set up with is gone
    later = io.StringIO()
    monkeypatch.setattr("sys.stderr", later)
    log.info("hello %s", "https://user:secret@example.org/x")
    assert later.getvalue() == "envbuild: hello https://***@example.org/x\n"
