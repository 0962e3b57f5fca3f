"""A dashboard's time range, kept in the page's URL: a preset that follows now, or a fixed from/to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

PRESETS = {
    "15m": ("Last 15 minutes", timedelta(minutes=15)),
    "1h": ("Last hour", timedelta(hours=1)),
    "6h": ("Last 6 hours", timedelta(hours=6)),
    "24h": ("Last 24 hours", timedelta(days=1)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}
DEFAULT = "1h"
# What <input type="datetime-local"> reads and writes: wall-clock time of the user's zone.
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


@dataclass(frozen=True)
class TimeRange:
    """The instants a dashboard shows; ``live`` ranges end now and follow it."""

    start: datetime
    end: datetime
    live: bool
    preset: str | None
    label: str


def _local(text: str, zone: ZoneInfo) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)


def parse(search: str | None, zone: ZoneInfo, now: datetime | None = None) -> TimeRange:
    """The range a URL query names (``range=6h``, or ``from=…&to=…`` in the user's zone); else the default."""
    query = parse_qs((search or "").lstrip("?"))
    now = now or datetime.now(UTC)
    start = _local(query.get("from", [""])[0], zone) if query.get("from") else None
    end = _local(query.get("to", [""])[0], zone) if query.get("to") else None
    if start is not None and end is not None and start < end:
        shown = (
            f"{start.astimezone(zone):%Y-%m-%d %H:%M} to {end.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"
        )
        return TimeRange(start, end, False, None, shown)
    preset = query.get("range", [DEFAULT])[0]
    if preset not in PRESETS:
        preset = DEFAULT
    label, span = PRESETS[preset]
    return TimeRange(now - span, now, True, preset, label)


def current(zone: ZoneInfo) -> TimeRange:
    """The range of this request's page URL (the router keeps its query in ``flask.g``)."""
    from flask import g, has_request_context

    return parse(g.get("wb_search") if has_request_context() else None, zone)


def for_preset(preset: str) -> str:
    """The URL query of a preset range."""
    return "?" + urlencode({"range": preset})


def for_span(start: str, end: str) -> str:
    """The URL query of a fixed range (wall-clock times of the user's zone, as the inputs show them)."""
    return "?" + urlencode({"from": start, "to": end})


def local_text(moment: datetime, zone: ZoneInfo) -> str:
    """An instant as a datetime-local input shows it in ``zone``."""
    return moment.astimezone(zone).strftime(LOCAL_FORMAT)
