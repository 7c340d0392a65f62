"""Logging set-up for command-line entry points (dodo.py): envbuild's messages on stderr."""

from __future__ import annotations

import logging
import os
import sys

from envbuild.util.redact import ScrubFilter


def setup_logging() -> None:
    """INFO (DEBUG with ENVBUILD_VERBOSE=1) from the ``envbuild`` logger to stderr, once."""
    log = logging.getLogger("envbuild")
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("envbuild: %(message)s"))
    handler.addFilter(ScrubFilter())
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if os.environ.get("ENVBUILD_VERBOSE") else logging.INFO)
    log.propagate = False
