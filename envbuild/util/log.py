"""Logging set-up for command-line entry points (dodo.py): envbuild's messages on stderr."""

from __future__ import annotations

import logging
import os
import sys

from envbuild.util.redact import ScrubFilter


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler writing to ``sys.stderr`` as it is at each message, not as it was when
    logging was set up: a caller that swaps stderr (pytest's capture, a closed pipe replaced by
    /dev/null) never leaves the handler writing to a closed stream ("--- Logging error ---")."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging() -> None:
    """INFO (DEBUG with ENVBUILD_VERBOSE=1) from the ``envbuild`` logger to stderr, once."""
    log = logging.getLogger("envbuild")
    if log.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("envbuild: %(message)s"))
    handler.addFilter(ScrubFilter())
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if os.environ.get("ENVBUILD_VERBOSE") else logging.INFO)
    log.propagate = False
