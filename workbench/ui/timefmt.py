"""Times, numbers and units as the UI shows them: in the user's zone (labelled), rounded, units as written."""

from __future__ import annotations

import math
import uuid
import zoneinfo
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from flask import g, has_request_context, request
from sqlalchemy import Engine, select, update

from workbench.db.tables import users

# The browser's zone, written by wb_live.js before Dash asks the server for anything.
ZONE_COOKIE = "wb_tz"
UNITS = {
    "C": "°C",
    "degC": "°C",
    "deg C": "°C",
    "F": "°F",
    "degF": "°F",
    "K": "K",
    "m3/h": "m³/h",
    "m3/s": "m³/s",
    "m3": "m³",
    "m2": "m²",
    "Nm3/h": "Nm³/h",
    "um": "µm",
    "us": "µs",
    "ohm": "Ω",
    "pct": "%",
    "percent": "%",
}


@cache
def zones() -> tuple[str, ...]:
    """Every IANA zone name, sorted."""
    return tuple(sorted(zoneinfo.available_timezones()))


def parse_zone(name: str | None) -> ZoneInfo | None:
    """The zone called ``name``, or None for an unknown or empty name."""
    if not name or name not in zones():
        return None
    return ZoneInfo(name)


def profile_zone(engine: Engine, user_id: str) -> str | None:
    """The zone a user chose in their profile (None: follow the browser)."""
    with engine.connect() as conn:
        return conn.execute(select(users.c.timezone).where(users.c.id == uuid.UUID(user_id))).scalar()


def set_profile_zone(engine: Engine, user_id: str, name: str | None) -> None:
    """Store a user's zone (None: follow the browser); raises ValueError for an unknown zone."""
    if name and parse_zone(name) is None:
        raise ValueError(f"unknown time zone {name!r}")
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == uuid.UUID(user_id)).values(timezone=name or None))


def current_zone() -> ZoneInfo:
    """The zone of this request's user: their profile's, else their browser's, else UTC."""
    if not has_request_context():
        return ZoneInfo("UTC")
    cached = g.get("wb_zone")
    if cached is not None:
        return cached
    from workbench.platform import current_platform
    from workbench.ui.session import current_user

    user = current_user()
    chosen = profile_zone(current_platform().engine, user.user_id) if user else None
    zone = parse_zone(chosen) or parse_zone(request.cookies.get(ZONE_COOKIE)) or ZoneInfo("UTC")
    g.wb_zone = zone
    return zone


def _aware(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def wall(value: datetime | str | None, zone: ZoneInfo | None = None) -> str | None:
    """An instant as wall-clock time in ``zone`` (ISO without offset): what Plotly draws as-is."""
    if value is None:
        return None
    local = _aware(value).astimezone(zone or current_zone())
    return local.replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")


def walls(values: list[Any], zone: ZoneInfo | None = None) -> list[str | None]:
    """``wall`` of each instant (a chart's x values)."""
    zone = zone or current_zone()
    return [wall(v, zone) for v in values]


def show(value: datetime | str | None, zone: ZoneInfo | None = None) -> str:
    """An instant as tables show it: ``YYYY-MM-DD HH:MM:SS`` in ``zone`` (the zone is in the header)."""
    if value is None:
        return "—"
    return _aware(value).astimezone(zone or current_zone()).strftime("%Y-%m-%d %H:%M:%S")


def label(zone: ZoneInfo | None = None) -> str:
    """The zone's name, as headers and axes label times."""
    return str((zone or current_zone()).key)


def header(name: str = "Time", zone: ZoneInfo | None = None) -> str:
    """A time column's header naming its zone, e.g. ``Time (Asia/Kolkata)``."""
    return f"{name} ({label(zone)})"


def zoned(columns: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    """Grid columns whose time ``fields`` name the user's zone in their header."""
    zone = current_zone()
    # The cells hold text as :func:`show` writes it, or a word ("never", "—"): typed as text, as AG Grid
    # would otherwise infer a date column from its first row and draw every other word as an empty cell.
    return [
        {**c, "headerName": header(c.get("headerName") or c["field"], zone), "cellDataType": "text"}
        if c["field"] in fields
        else c
        for c in columns
    ]


def number(value: Any) -> str:
    """A value rounded to a sensible precision: 4 significant digits (integers as they are)."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (math.isfinite(value) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    if not math.isfinite(value):
        return str(value)
    magnitude = math.floor(math.log10(abs(value))) if value else 0
    if magnitude >= 15 or magnitude < -4:
        return f"{value:.3g}"
    decimals = max(0, 3 - magnitude)
    text = f"{value:.{decimals}f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return text


def unit(raw: str | None) -> str:
    """A unit as users write it (``C`` becomes ``°C``, ``m3/h`` becomes ``m³/h``)."""
    if not raw:
        return ""
    return UNITS.get(raw.strip(), raw.strip())
