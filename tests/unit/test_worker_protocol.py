"""Issue 29: the py-rattler worker reports a failure's kind as data, decided where the
exception is caught (by type, else by py-rattler's message, read in one place), and its
install request is a typed structure serialised in one place. Pure: no worker is started."""

from __future__ import annotations

import errno
import json

import pytest

from envbuild.rattler.protocol import (
    FailureKind,
    InstallRequest,
    WorkerFailure,
    classify,
)
from envbuild.rattler.records import ArchiveMismatch

SHA_A, SHA_B = "a" * 64, "b" * 64


@pytest.mark.parametrize(
    ("exc", "kind", "unreachable"),
    [
        (RuntimeError("error sending request for url (https://x/a.conda)"), "network", True),
        (RuntimeError("request timed out"), "network", False),
        (RuntimeError("server returned status code: 503"), "network", False),
        (RuntimeError("failed to open /mirror/a.conda: No such file"), "other", True),
        (RuntimeError("failed to link: No space left on device (os error 28)"), "disk", False),
        (OSError(errno.ENOSPC, "full"), "disk", False),
        (OSError(errno.EACCES, "denied"), "other", False),
        (ValueError("invalid match spec"), "other", False),
    ],
)
def test_failures_are_classified_where_caught(
    exc: BaseException, kind: str, unreachable: bool
) -> None:
    failure = classify(exc)
    assert (failure.kind, failure.unreachable) == (FailureKind(kind), unreachable)
    assert failure.type == type(exc).__name__ and failure.message == str(exc)


def test_checksum_failures_carry_their_details() -> None:
    detail = {"name": "x", "url": "u", "transport": "t", "expected": SHA_A, "actual": SHA_B}
    assert classify(ArchiveMismatch([detail])).kind is FailureKind.CHECKSUM
    message = (
        f"hash mismatch when extracting https://m/x-1.conda to /c/x-1: "
        f"expected {SHA_A}, got {SHA_B}"
    )
    failure = classify(RuntimeError(f"connection pool: {message}"))  # not retried
    assert failure.kind is FailureKind.CHECKSUM
    assert failure.details == (
        {"transport": "https://m/x-1.conda", "expected": SHA_A, "actual": SHA_B},
    )


def test_failures_and_requests_round_trip_through_json() -> None:
    failure = WorkerFailure("InstallerError", "m", ("a",), ({"k": "v"},), FailureKind.DISK)
    assert WorkerFailure.from_json(json.loads(json.dumps(failure.to_json()))) == failure
    later = {**failure.to_json(), "kind": "from-a-newer-worker"}
    assert WorkerFailure.from_json(later).kind is FailureKind.OTHER
    request = InstallRequest(({"name": "x", "url": "u"},), "/p", "linux-64", "/c", {}, ("x",))
    assert InstallRequest.from_json(json.loads(json.dumps(request.to_json()))) == request
    with pytest.raises(ValueError, match="unknown keys"):
        InstallRequest.from_json({**request.to_json(), "prefx": "/q"})
    with pytest.raises(ValueError, match="install request"):
        InstallRequest.from_json({"records": [], "specs": []})
