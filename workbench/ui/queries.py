"""Reads behind the UI pages (SQLAlchemy Core): devices, latest values, telemetry history, KPIs."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, func, select

from workbench.db import series as series_queries
from workbench.db.tables import alerts, devices, latest_values, rules, telemetry
from workbench.rules.alerts import OPEN

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A chart never gets more buckets than this: a year of 1 Hz data is aggregated on the server.
MAX_POINTS = 1500


def list_devices(engine: Engine) -> list[dict[str, Any]]:
    """Every device with its status, ordered by area, type and name."""
    query = select(
        devices.c.id,
        devices.c.name,
        devices.c.type,
        devices.c.area,
        devices.c.location,
        devices.c.status,
        devices.c.last_seen,
    ).order_by(devices.c.area, devices.c.type, devices.c.name)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def get_device(engine: Engine, device_id: str) -> dict[str, Any] | None:
    """One device, or None (also for a malformed id)."""
    try:
        key = uuid.UUID(device_id)
    except ValueError:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.id == key)).first()
    return dict(row._mapping) if row else None


def latest(engine: Engine, device_id: str) -> list[dict[str, Any]]:
    """The device's latest value per key."""
    query = (
        select(latest_values)
        .where(latest_values.c.device_id == uuid.UUID(device_id))
        .order_by(latest_values.c.key)
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def device_keys(engine: Engine, device_id: str) -> list[str]:
    """Keys the device has reported (from latest values)."""
    return [row["key"] for row in latest(engine, device_id)]


def kpis(engine: Engine) -> dict[str, int]:
    """Online devices, all devices, open alerts."""
    with engine.connect() as conn:
        online = conn.execute(select(func.count()).where(devices.c.status == "online")).scalar_one()
        total = conn.execute(select(func.count()).select_from(devices)).scalar_one()
        active = conn.execute(select(func.count()).where(alerts.c.status == "active")).scalar_one()
    return {"online": int(online), "devices": int(total), "active_alerts": int(active)}


SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}


def open_alarms(engine: Engine, device_id: str | None = None) -> dict[str, dict[str, Any]]:
    """Per device: its worst open (active or acknowledged) alert's severity and how many are open."""
    rank = case(SEVERITY_RANK, value=alerts.c.severity, else_=0)
    query = (
        select(alerts.c.device_id, func.max(rank).label("rank"), func.count().label("count"))
        .where(alerts.c.status.in_(OPEN), alerts.c.device_id.is_not(None))
        .group_by(alerts.c.device_id)
    )
    if device_id:
        query = query.where(alerts.c.device_id == uuid.UUID(device_id))
    names = {v: k for k, v in SEVERITY_RANK.items()}
    with engine.connect() as conn:
        return {
            str(row.device_id): {"severity": names.get(row.rank, "info"), "count": int(row[2])}
            for row in conn.execute(query)
        }


def worst(alarms: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The worst severity over devices' open alarms and the count of open alarms, or None."""
    if not alarms:
        return None
    severity = max((a["severity"] for a in alarms.values()), key=lambda s: SEVERITY_RANK.get(s, 0))
    return {"severity": severity, "count": sum(a["count"] for a in alarms.values())}


def device_alerts(engine: Engine, device_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The device's open alerts first, then its recent ones, newest first, with their rule's name."""
    is_open = case((alerts.c.status.in_(OPEN), 0), else_=1)
    query = (
        select(alerts, rules.c.name.label("rule"))
        .select_from(alerts.outerjoin(rules, rules.c.id == alerts.c.rule_id))
        .where(alerts.c.device_id == uuid.UUID(device_id))
        .order_by(is_open, alerts.c.created_at.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def bucket_for(start: datetime, end: datetime, max_points: int = MAX_POINTS) -> timedelta | None:
    """The time bucket keeping a range under ``max_points``; None when raw points are few enough."""
    span = (end - start).total_seconds()
    seconds = math.ceil(span / max_points)
    return None if seconds <= 1 else timedelta(seconds=seconds)


def series(
    engine: Engine, device_id: str, key: str, start: datetime, end: datetime, max_points: int = MAX_POINTS
) -> dict[str, list[Any]]:
    """Values of one key in [start, end]: raw when few, else per-bucket avg/min/max (from rollups)."""
    device = uuid.UUID(device_id)
    where = (
        (telemetry.c.device_id == device)
        & (telemetry.c.key == key)
        & (telemetry.c.timestamp >= start)
        & (telemetry.c.timestamp <= end)
    )
    bucket = bucket_for(start, end, max_points)
    rows: Any
    with engine.connect() as conn:
        if bucket is None:
            rows = conn.execute(
                select(telemetry.c.timestamp, telemetry.c.value)
                .where(where)
                .order_by(telemetry.c.timestamp)
                .limit(max_points * 2)
            ).all()
            return {"x": [r[0] for r in rows], "y": [r[1] for r in rows], "min": [], "max": []}
    # Whole minutes or hours on a whole-minute/hour range let the API's aggregate read the rollups.
    unit = timedelta(hours=1) if bucket >= timedelta(hours=1) else timedelta(minutes=1)
    step = unit * math.ceil(bucket / unit)
    first = EPOCH + unit * math.floor((start - EPOCH) / unit)
    last = EPOCH + unit * math.ceil((end - EPOCH) / unit)
    items = series_queries.aggregate(engine, device, [key], first, last, step, ["avg", "min", "max"], "UTC")
    return {
        "x": [item["bucket"] for item in items],
        "y": [item["values"]["avg"] for item in items],
        "min": [item["values"]["min"] for item in items],
        "max": [item["values"]["max"] for item in items],
    }
