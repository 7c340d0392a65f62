"""The named points where a test may kill an envbuild process, as ``kill -9`` would: one registry.

Crash-consistency tests cut a command at a chosen point for real (SIGKILL: no ``finally``, no
``atexit``) and check that the next command finishes or discards what was cut. Production code
marks each point with :func:`reached`; the test harness arms one point in the environment of
the child it starts (:func:`armed`, which sets :data:`VARIABLE`). Both ends take only names
registered in :data:`POINTS`, so a renamed or removed point fails loudly (a KeyError) instead
of silently never firing; ``tests/unit/test_architecture.py`` checks that every call names a
registered point and that every point is armed by some test.

Standard library only: nothing happens unless the variable is set.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Final

VARIABLE: Final = "ENVBUILD_KILL_AT"

# name -> the point, right after which the process kills itself
POINTS: Final[Mapping[str, str]] = {
    # ops/promotion.py: the steps of a switch, in order (promotion.STEPS)
    "journal": "the switch's journal is written; nothing switched yet",
    "environment": "envs/<name> points at the new build",
    "lockfile": "the lockfile is the new build's",
    "explicit": "the explicit files are rewritten",
    "tarball": "the published tarball is the new build's",
    "context": "the Docker context is switched",
    "image": "the image tag :current is moved (with an engine)",
    "registry": "the registry's :current is moved (with [publish])",
    "state": "the stage records are the new build's; the journal is still there",
    # ops/nightly.py
    "built": "a nightly candidate is installed, before its smoke checks",
    "pushed": "a nightly candidate is pushed by digest, no tag moved",
    # deliver/publish.py, deliver/tags.py
    "publish:blob": "a blob is uploaded",
    "publish:manifest": "a manifest is pushed by digest",
    "publish:referrers": "the referrers tag-schema index is updated (a registry without the API)",
    "publish:tag": "a tag is moved (the first, when armed)",
    # deliver/pull.py
    "pull:fetched": "the environment blob is fetched into the pull's staging place",
    "pull:unpacked": "the environment is unpacked, before it is switched in",
}


def _known(point: str) -> str:
    if point not in POINTS:
        msg = f"no kill point named {point!r} (known: {', '.join(POINTS)})"
        raise KeyError(msg)
    return point


def reached(point: str) -> None:
    """SIGKILL this process if the test harness armed ``point`` (``$ENVBUILD_KILL_AT``).
    Raises KeyError for a name not in :data:`POINTS`."""
    if os.environ.get(VARIABLE) == _known(point):
        os.kill(os.getpid(), signal.SIGKILL)


def armed(point: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: empty) plus :data:`VARIABLE` set to ``point``: the environment
    additions for a child that must kill itself there. Raises KeyError for an unknown name."""
    return {**(env or {}), VARIABLE: _known(point)}
