"""The GitHub Actions the generated workflow uses, each pinned to one commit.

A tag such as ``actions/checkout@v4`` is a mutable pointer: whoever can push to that repository
can move it, and every workflow that names it runs the new code on its next night with the
repository's token. GitHub's hardening guide therefore asks for the full commit SHA ("Pinning an
action to a full length commit SHA is currently the only way to use an action as an immutable
release"), with the tag kept as a comment for readers and update bots:
https://docs.github.com/en/actions/security-for-github-actions/security-guides/security-hardening-for-github-actions#using-third-party-actions

:data:`PINS` is the one table the templates read (``<< uses["actions/checkout"] >>``). Each entry is
the commit the action's major tag pointed to when the table was last updated, read from the
action's own repository (``git rev-parse <tag>^{commit}``), so pinning did not change which code
runs. Update it deliberately, one action at a time: read the release notes, take the new tag's
commit from the action's repository (never from a third party), and change tag and SHA together;
``tests/unit/test_schedule.py`` checks that every ``uses:`` of the workflow is one of these pins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SHA = re.compile(r"[0-9a-f]{40}")
_ACTION = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+")
_TAG = re.compile(r"v\d+(\.\d+){0,2}")


@dataclass(frozen=True, slots=True)
class Pin:
    """One action pinned: ``action`` is ``owner/repo``, ``tag`` the release tag (``v4.4.0``),
    ``sha`` the 40-hex commit that tag names in the action's repository."""

    action: str
    tag: str
    sha: str

    def __post_init__(self) -> None:
        if not (
            _ACTION.fullmatch(self.action) and _TAG.fullmatch(self.tag) and _SHA.fullmatch(self.sha)
        ):
            msg = f"bad action pin {self.action}@{self.sha} # {self.tag}"
            raise ValueError(msg)

    @property
    def uses(self) -> str:
        """The ``uses:`` value, ``owner/repo@<sha> # <tag>`` (the comment ends the YAML line)."""
        return f"{self.action}@{self.sha} # {self.tag}"


# action -> pin; the commit each action's major tag (v4, v5, v7) named on 2026-07-20
_TABLE = (
    Pin("actions/checkout", "v4.4.0", "11d5960a326750d5838078e36cf38b85af677262"),
    Pin("actions/setup-python", "v5.6.0", "a26af69be951a213d495a4c3e4e4022e16d87065"),
    Pin("actions/upload-artifact", "v4.6.2", "ea165f8d65b6e75b540449e92b4886f43607fa02"),
    Pin("actions/download-artifact", "v4.3.0", "d3f86a106a0bac45b974a628896c90dbdf5c8093"),
    Pin("actions/cache", "v4.3.0", "0057852bfaa89a56745cba8c7296529d2fc39830"),
    Pin("peter-evans/create-pull-request", "v7.0.11", "22a9089034f40e5a961c8808d113e2c98fb63676"),
)
PINS: dict[str, Pin] = {p.action: p for p in _TABLE}


def uses() -> dict[str, str]:
    """action (``owner/repo``) -> its ``uses:`` value, for the templates."""
    return {name: pin.uses for name, pin in PINS.items()}
