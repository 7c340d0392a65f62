"""Moving an image's tags, ``:current`` last: the step a publish ends with, and the step a
journaled switch (nightly, rollback) repeats after kill -9. Each tag is moved only if it names
another digest, and read back after it moved (a registry's answer is not taken on trust)."""

from __future__ import annotations

import datetime
from typing import Any

from envbuild.deliver.registry import Client, connect
from envbuild.deliver.registry_http import DEADLINE, Deadline
from envbuild.errors import RegistryError
from envbuild.util import kill_points
from envbuild.util.reference import Reference, parse_reference


class TagMoveError(RegistryError):
    """Moving the tags failed part way; ``moved`` names the tags already moved, in order."""

    def __init__(self, message: str, moved: tuple[str, ...]) -> None:
        super().__init__(message)
        self.moved = moved


def move_tags(
    registry: str,
    name: str,
    image: str,
    lock_sha256: str,
    insecure: bool = False,
    today: str | None = None,
    deadline: Deadline | None = None,
) -> tuple[str, ...]:
    """Point ``registry/<name>``'s ``:<lock 12 hex>``, ``:<date>`` and ``:current`` at the
    image ``image`` (a digest already pushed), moving only those that point elsewhere: the
    idempotent step a journaled switch (nightly, rollback) can repeat after kill -9. Returns
    the tags moved. Raises RegistryError if the registry lacks the image, TagMoveError
    (naming the tags already moved) if a tag cannot be moved."""
    ref = parse_reference(f"{registry.rstrip('/')}/{name.lower()}@{image}")
    client = connect(ref.host, insecure, deadline or Deadline.after(DEADLINE))
    data, media, _ = client.get_manifest(ref)
    subject = {"mediaType": media, "digest": image, "size": len(data)}
    return move(client, ref.with_target("current"), lock_sha256, subject, data, today)


def move(
    client: Client,
    ref: Reference,
    lock_sha256: str,
    subject: dict[str, Any],
    data: bytes,
    today: str | None,
) -> tuple[str, ...]:
    """Point ``:<lock 12 hex>``, then (if ``:current`` is elsewhere) ``:<date>`` and
    ``:current`` at the image, each checked by reading it back. Returns the tags moved.
    Raises TagMoveError naming the tags moved before a failure (``:current`` is last)."""
    current = ref.with_target("current")
    tags = [lock_sha256[:12]]
    if client.manifest_digest(current) != subject["digest"]:
        date = today or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        tags += [date, "current"]
    moved: list[str] = []
    try:
        for tag in tags:
            at = ref.with_target(tag)
            if client.manifest_digest(at) != subject["digest"]:
                client.put_manifest(at, data, subject["mediaType"])
                moved.append(tag)
                kill_points.reached("publish:tag")
    except RegistryError as e:
        done = ", ".join(f":{t}" for t in moved) or "none"
        msg = f"{e}\ntags already moved to {subject['digest']}: {done}; the next publish "
        msg += "moves the rest (:current last)"
        raise TagMoveError(msg, tuple(moved)) from None
    return tuple(moved)
