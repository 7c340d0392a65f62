"""The kill points' registry (issue 29): one table of names, checked at both ends."""

from __future__ import annotations

import pytest

from envbuild.util import kill_points


def test_armed_sets_the_variable_for_a_registered_point_only() -> None:
    assert kill_points.armed("journal", {"A": "1"}) == {"A": "1", "ENVBUILD_KILL_AT": "journal"}
    with pytest.raises(KeyError, match="no kill point named 'jurnal'"):
        kill_points.armed("jurnal")


def test_reached_refuses_an_unknown_name_and_passes_an_unarmed_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(kill_points.VARIABLE, "state")  # armed elsewhere: this one passes
    kill_points.reached("journal")
    with pytest.raises(KeyError, match="known: journal"):
        kill_points.reached("jurnal")
