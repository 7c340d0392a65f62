"""Build stage: exact installs from the lock, staged prefixes, failures and interrupts."""

from __future__ import annotations

from envbuild.install.build import new_build_id


def test_build_ids_sort_by_time_within_one_second() -> None:
    # "keep" retires the oldest build by id: a later build of another lock must sort after
    first, second = new_build_id("f" * 64, 100.2), new_build_id("0" * 64, 100.7)
    assert first < second and first.startswith("19700101T000140200Z-")
