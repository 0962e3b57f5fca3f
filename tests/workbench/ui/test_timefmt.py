"""Rounding, units and wall-clock times as the UI shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from workbench.ui import timefmt


def test_numbers_are_rounded_to_a_sensible_precision() -> None:
    assert timefmt.number(41.0) == "41"
    assert timefmt.number(55.25) == "55.25"
    assert timefmt.number(3.14159265) == "3.142"
    assert timefmt.number(1234.5678) == "1235"
    assert timefmt.number(0.000123456) == "0.0001235"
    assert timefmt.number(None) == "—"
    assert timefmt.number("on") == "on"


def test_units_are_written_as_users_write_them() -> None:
    assert timefmt.unit("C") == "°C"
    assert timefmt.unit("m3/h") == "m³/h"
    assert timefmt.unit("bar") == "bar"
    assert timefmt.unit(None) == ""


def test_instants_become_wall_clock_times_of_the_zone() -> None:
    instant = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert timefmt.wall(instant, ZoneInfo("Asia/Kolkata")) == "2026-07-01 17:30:00.000"
    assert timefmt.wall("2026-07-01T12:00:00+00:00", ZoneInfo("America/Chicago")) == "2026-07-01 07:00:00.000"
    assert timefmt.show(instant, ZoneInfo("America/Chicago")) == "2026-07-01 07:00:00"
    assert timefmt.header("Time", ZoneInfo("Asia/Kolkata")) == "Time (Asia/Kolkata)"
    assert timefmt.parse_zone("Mars/Olympus") is None
