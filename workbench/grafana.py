"""A workbench dashboard as a Grafana dashboard: SQL panels on the rollups, latest values and alerts.

The panels query the database through the read-only login (``workbench db grant-reader``) with Grafana's
PostgreSQL macros (``$__timeFilter``, ``$__timeGroupAlias``), so Grafana draws the same numbers as the
workbench's chart endpoint: averages as ``sum(sum) / sum(count)`` of minute rollups, not averages of averages.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from sqlalchemy import Engine, or_, select

from workbench.db.tables import dashboards

DATASOURCE = {"type": "grafana-postgresql-datasource", "uid": "workbench"}
GRID_COLUMNS = 24  # Grafana's grid; the workbench's has 12
# How each workbench aggregation reads from a rollup table.
ROLLUP_AGGREGATES = {"avg": "sum(sum) / sum(count)", "min": "min(min)", "max": "max(max)"}
WINDOWS = {"15m": "now-15m", "1h": "now-1h", "6h": "now-6h", "24h": "now-24h", "7d": "now-7d"}


class DashboardNotFound(LookupError):
    """No dashboard has that name or id."""


def export(engine: Engine, name_or_id: str) -> dict[str, Any]:
    """The Grafana dashboard JSON of the workbench dashboard named (or with the id) ``name_or_id``."""
    match = dashboards.c.name == name_or_id
    with contextlib.suppress(ValueError):
        match = or_(match, dashboards.c.id == uuid.UUID(name_or_id))
    with engine.connect() as conn:
        row = conn.execute(select(dashboards).where(match).order_by(dashboards.c.created_at)).first()
    if row is None:
        raise DashboardNotFound(f"no dashboard named {name_or_id!r}")
    return dashboard_json(dict(row._mapping))


def dashboard_json(board: dict[str, Any]) -> dict[str, Any]:
    """Grafana's JSON model for one stored dashboard (its ``widgets`` and ``layout``)."""
    places = {item["id"]: item for item in (board.get("layout") or {}).get("items", [])}
    widgets = board.get("widgets") or []
    panels = [_panel(index + 1, widget, places.get(widget.get("id"))) for index, widget in enumerate(widgets)]
    window = next((w.get("window") for w in widgets if w.get("window") in WINDOWS), "1h")
    return {
        "uid": f"wb-{str(board['id'])[:36]}",
        "title": board["name"],
        "tags": ["workbench"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "10s",
        "time": {"from": WINDOWS[window], "to": "now"},
        "panels": [panel for panel in panels if panel],
    }


def _panel(number: int, widget: dict[str, Any], place: dict[str, Any] | None) -> dict[str, Any]:
    kind = widget.get("type")
    keys: list[str] = widget.get("keys") or []
    device = widget.get("device_id")
    panel: dict[str, Any] = {
        "id": number,
        "title": widget.get("title") or kind,
        "datasource": DATASOURCE,
        "gridPos": _grid(place, number),
    }
    if kind in ("line", "area") and device and keys:
        fill = 20 if kind == "area" else 0
        panel.update(
            type="timeseries",
            targets=[_target(series_sql(device, keys, widget.get("aggregation") or "avg"), "time_series")],
            fieldConfig={"defaults": {"custom": {"fillOpacity": fill}}, "overrides": []},
        )
    elif kind in ("gauge", "stat") and device and keys:
        # Grafana's gauge and stat show one value: the widget's first key (the builder offers one).
        panel.update(
            type=kind,
            targets=[_target(latest_sql(device, keys[:1]), "table")],
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^value$/"}},
        )
    elif kind == "table" and device:
        panel.update(type="table", targets=[_target(latest_sql(device, keys), "table")])
    elif kind == "alerts":
        panel.update(type="table", targets=[_target(alerts_sql(device), "table")])
    elif kind == "status":
        panel.update(type="table", targets=[_target(STATUS_SQL, "table")])
    else:
        panel.update(
            type="text", options={"content": f"Workbench widget {kind!r} has no Grafana equivalent."}
        )
    return panel


def series_sql(device_id: str, keys: list[str], aggregation: str) -> str:
    """Minute rollups of ``keys`` grouped to Grafana's interval, one series per key."""
    return (
        f"SELECT $__timeGroupAlias(bucket, $__interval), key AS metric, "
        f"{ROLLUP_AGGREGATES.get(aggregation, ROLLUP_AGGREGATES['avg'])} AS value "
        f"FROM telemetry_1m WHERE device_id = {_literal(str(uuid.UUID(device_id)))} "
        f"AND key IN ({', '.join(_literal(key) for key in keys)}) AND $__timeFilter(bucket) "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )


def latest_sql(device_id: str, keys: list[str]) -> str:
    """The latest value of each key of a device (all keys when ``keys`` is empty)."""
    only = f" AND key IN ({', '.join(_literal(key) for key in keys)})" if keys else ""
    return (
        "SELECT key, value, unit, timestamp AS time FROM latest_values "
        f"WHERE device_id = {_literal(str(uuid.UUID(device_id)))}{only} ORDER BY key"
    )


def alerts_sql(device_id: str | None) -> str:
    """Open alerts raised in the range (of one device when given), newest first."""
    device = f" AND device_id = {_literal(str(uuid.UUID(device_id)))}" if device_id else ""
    return (
        "SELECT created_at AS time, severity, status, message, key, value FROM alerts "
        f"WHERE status <> 'resolved' AND $__timeFilter(created_at){device} ORDER BY created_at DESC LIMIT 100"
    )


STATUS_SQL = "SELECT name, type, area, status, last_seen FROM devices ORDER BY name"


def _target(raw_sql: str, form: str) -> dict[str, Any]:
    return {
        "refId": "A",
        "datasource": DATASOURCE,
        "editorMode": "code",
        "format": form,
        "rawQuery": True,
        "rawSql": raw_sql,
    }


def _grid(place: dict[str, Any] | None, number: int) -> dict[str, int]:
    if place is None:  # unplaced widgets stack two to a row
        return {"x": 12 * ((number - 1) % 2), "y": 8 * ((number - 1) // 2), "w": 12, "h": 8}
    scale = GRID_COLUMNS // 12
    return {"x": place["x"] * scale, "y": place["y"], "w": place["w"] * scale, "h": place["h"]}


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
