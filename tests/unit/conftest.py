"""The unit tier's guard: a test here runs in-process and never touches the real channel.

A test under ``tests/unit`` fails (it does not pass or hang) if it requests one of the session
fixtures that build or use a channel, an engine or a registry, or if anything it runs, its
fixtures included, starts a process (``subprocess``, ``os.fork``, ``os.posix_spawn``,
``os.system``): such a test belongs in ``tests/integration``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

# session fixtures of tests/conftest.py that build a channel, run conda, docker or doit
INTEGRATION_FIXTURES = frozenset(
    {
        "channel",
        "cf_channel",
        "conda_peer",
        "make_project",
        "project",
        "built_own",
        "base",
        "engine",
    }
)


def _refuse(*args: object, **kwargs: object) -> NoReturn:
    raise RuntimeError(
        "a unit test started a process; move it to tests/integration "
        "(the unit tier runs in-process only: tests/unit/conftest.py)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    used = sorted(INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())))
    if used:
        pytest.fail(
            f"{item.nodeid} requests {', '.join(used)}: a channel fixture; "
            "move the test to tests/integration",
            pytrace=False,
        )
    with _no_processes():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _no_processes():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    with _no_processes():
        yield


@contextmanager
def _no_processes() -> Iterator[None]:
    """Within the block, every way of starting a process raises :func:`_refuse`'s error."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "_execute_child", _refuse)
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
            if hasattr(os, name):
                patch.setattr(os, name, _refuse)
        yield
