"""Whether a report's window holds data for its devices, and a default window that does (before rendering)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from workbench.notebooks.parameters import defaults
from workbench.reports import params

# Parameters the Reports form asks for in fields of their own (the JSON box shows the others).
OWN_FIELDS = ("start", "end", "timezone")
# The default window when the last day holds data; else the day before the newest point.
LAST_DAY = {"start": "now-1d", "end": "now"}

_SCOPE = """
FROM devices d WHERE (CAST(:everyone AS boolean) OR d.name = ANY(:devices) OR d.id::text = ANY(:devices))
  AND (:area = '' OR d.area = :area)
"""
_POINTS = (
    "SELECT count(*) FROM (SELECT 1 FROM telemetry t WHERE t.device_id IN (SELECT d.id "
    + _SCOPE
    + ") AND t.timestamp >= :start AND t.timestamp < :end LIMIT 100000) AS found"
)
_ALERTS = (
    "SELECT count(*) FROM alerts a WHERE a.device_id IN (SELECT d.id "
    + _SCOPE
    + ") AND COALESCE(a.triggered_at, a.created_at) >= :start"
    + " AND COALESCE(a.triggered_at, a.created_at) < :end"
)
_NEWEST = "SELECT max(t.timestamp) FROM telemetry t WHERE t.device_id IN (SELECT d.id " + _SCOPE + ")"


@dataclass(frozen=True)
class Coverage:
    """What a report's window holds: its resolved bounds, telemetry points (up to 100,000) and alerts."""

    start: datetime
    end: datetime
    points: int
    alerts: int

    @property
    def empty(self) -> bool:
        """Nothing to report: no point and no alert in the window."""
        return self.points == 0 and self.alerts == 0


def _in_zone(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _scope(parameters: dict[str, Any]) -> dict[str, Any]:
    devices = [str(d) for d in parameters.get("devices") or []]
    return {"everyone": not devices, "devices": devices, "area": str(parameters.get("area") or "")}


def coverage(engine: Engine, parameters: dict[str, Any], reference: datetime) -> Coverage:
    """The window of ``parameters`` (relative bounds resolved at ``reference``) and the data it holds.

    :class:`workbench.reports.params.ParameterError` when a bound or the zone does not parse."""
    resolved = params.resolve(parameters, reference)
    zone = ZoneInfo(str(resolved["timezone"]))
    # As the notebooks read them: a time without an offset is wall time in the report's zone.
    start, end = (_in_zone(datetime.fromisoformat(resolved[name]), zone) for name in ("start", "end"))
    if end <= start:
        raise params.ParameterError(f"end ({resolved['end']}) must be after start ({resolved['start']})")
    bind = {**_scope(parameters), "start": start, "end": end}
    with engine.connect() as conn:
        points = int(conn.execute(text(_POINTS), bind).scalar_one())
        alerts = int(conn.execute(text(_ALERTS), bind).scalar_one())
    return Coverage(start, end, points, alerts)


def default_window(engine: Engine, parameters: dict[str, Any], reference: datetime) -> dict[str, str]:
    """``start``/``end`` of a window with data: the last day when it holds some, else the day up to the
    newest point of the devices in scope (the last day when there is none at all)."""
    if not coverage(engine, {**parameters, **LAST_DAY}, reference).empty:
        return dict(LAST_DAY)
    with engine.connect() as conn:
        newest = conn.execute(text(_NEWEST), _scope(parameters)).scalar()
    if newest is None:
        return dict(LAST_DAY)
    end = newest.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return {"start": (end - timedelta(days=1)).isoformat(), "end": end.isoformat()}


def example(path: Path) -> dict[str, Any]:
    """The notebook's parameters a caller may set besides the window and zone, with their defaults: what
    the form's parameters box shows (every one of them is passed on to the notebook)."""
    return {
        name: value
        for name, value in defaults(path).items()
        if name not in params.RESERVED and name not in OWN_FIELDS
    }
