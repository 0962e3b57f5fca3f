"""Report parameters: relative windows resolve in the report's timezone (DST included); bad ones are named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from workbench.reports.params import ParameterError, check, resolve, resolve_time

PARIS = ZoneInfo("Europe/Paris")
HEALTH = Path(__file__).resolve().parents[3] / "reports" / "device_health.ipynb"


def test_default_window_is_the_previous_local_day() -> None:
    resolved = resolve({"timezone": "Europe/Paris"}, datetime(2026, 3, 30, 4, 30, tzinfo=UTC))
    assert resolved["start"] == "2026-03-29T00:00:00+01:00"  # the day DST began: 23 hours long
    assert resolved["end"] == "2026-03-30T00:00:00+02:00"
    assert resolved["timezone"] == "Europe/Paris"


def test_relative_and_absolute_times() -> None:
    now = datetime(2026, 6, 15, 12, 34, tzinfo=UTC)
    assert resolve_time("now", now, PARIS) == "2026-06-15T14:34:00+02:00"
    assert resolve_time("now-90m", now, PARIS) == "2026-06-15T13:04:00+02:00"
    assert resolve_time("today - 1w", now, PARIS) == "2026-06-08T00:00:00+02:00"
    assert resolve_time("today+1d", now, ZoneInfo("UTC")) == "2026-06-16T00:00:00+00:00"
    assert resolve_time("2026-01-01T00:00:00Z", now, PARIS) == "2026-01-01T00:00:00+00:00"
    with pytest.raises(ParameterError, match="end 'tomorrowish' is neither ISO 8601"):
        resolve_time("tomorrowish", now, PARIS, "end")


def test_check_rejects_what_the_platform_sets_and_malformed_values() -> None:
    given = {"devices": ["press-1"], "area": "north"}
    assert check(given, HEALTH) == given
    with pytest.raises(ParameterError, match="'report_dir' is set by the platform"):
        check({"report_dir": "/etc"}, HEALTH)
    with pytest.raises(ParameterError, match="'devices' must be a list"):
        check({"devices": "press-1"}, HEALTH)
    with pytest.raises(ParameterError, match="not an IANA timezone"):
        check({"timezone": "CET+99"}, HEALTH)
    with pytest.raises(ParameterError, match="unknown parameter 'top_rules'; allowed: start, end"):
        check({"top_rules": 3}, HEALTH)  # alert_summary's, not device_health's
