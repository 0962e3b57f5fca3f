"""Alert rows: raise (deduplicated by the database), auto-resolve, acknowledge, resolve, and their events."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from workbench.db.tables import alerts, rules
from workbench.live.bus import ALERT, ALERT_UPDATE
from workbench.metrics import ALERTS_RAISED
from workbench.platform import Platform
from workbench.rules.conditions import render
from workbench.rules.lifecycle import Decision
from workbench.rules.store import DeviceDirectory

log = logging.getLogger(__name__)
OPEN = ("active", "acknowledged")


def as_time(ts: int) -> datetime:
    """Nanoseconds since the epoch as an aware UTC datetime."""
    stamp: datetime = pd.Timestamp(int(ts), tz="UTC").to_pydatetime()
    return stamp


def alert_values(decision: Decision, directory: DeviceDirectory | None) -> dict[str, Any]:
    """Column values of the alert a ``raise`` decision creates (message rendered from the rule's template)."""
    rule = decision.rule
    info = directory.get(decision.device_id) if directory else None
    triggered = as_time(decision.ts)
    fields = {
        "rule": rule.name,
        "device": info.name if info else decision.device_id,
        "device_id": decision.device_id,
        "key": decision.key,
        "value": decision.value,
        "threshold": decision.threshold,
        "severity": rule.severity,
        "time": triggered.isoformat(),
    }
    return {
        "id": uuid.uuid4(),
        "device_id": uuid.UUID(decision.device_id),
        "rule_id": uuid.UUID(rule.id),
        "severity": rule.severity,
        "message": render(rule.message, fields),
        "key": decision.key,
        "value": decision.value,
        "threshold": decision.threshold,
        "status": "active",
        "triggered_at": triggered,
        "metadata": {"rule": rule.name, "type": rule.type},
        "notebook_run_id": uuid.UUID(decision.notebook_run_id) if decision.notebook_run_id else None,
    }


def insert_alerts(conn: Connection, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert alerts; a (rule, device) pair that already has an open alert is skipped by the database."""
    if not values:
        return []
    # executemany of one cached statement (SQLAlchemy batches it into multi-row INSERT ... RETURNING).
    statement = (
        pg_insert(alerts)
        .on_conflict_do_nothing(
            index_elements=[alerts.c.rule_id, alerts.c.device_id],
            index_where=text("status <> 'resolved' AND rule_id IS NOT NULL"),
        )
        .returning(*alerts.c)
    )
    created = [dict(r) for r in conn.execute(statement, values).mappings()]
    counts: dict[uuid.UUID, tuple[int, datetime]] = {}
    for row in created:
        n, last = counts.get(row["rule_id"], (0, row["triggered_at"]))
        counts[row["rule_id"]] = (n + 1, max(last, row["triggered_at"]))
        ALERTS_RAISED.labels(row["severity"]).inc()
    if counts:
        # One statement for every rule that fired (executemany), not one round trip per rule.
        conn.execute(
            update(rules)
            .where(rules.c.id == bindparam("rid"))
            .values(
                trigger_count=rules.c.trigger_count + bindparam("n"),
                last_triggered=func.greatest(rules.c.last_triggered, bindparam("last")),
            ),
            [{"rid": rule_id, "n": n, "last": last} for rule_id, (n, last) in counts.items()],
        )
    return created


def auto_resolve(conn: Connection, pairs: list[tuple[str, str]], comment: str) -> list[dict[str, Any]]:
    """Resolve the open alerts of these (rule, device) pairs: the condition cleared."""
    if not pairs:
        return []
    keys = [(uuid.UUID(r), uuid.UUID(d)) for r, d in pairs]
    statement = (
        update(alerts)
        .where(tuple_(alerts.c.rule_id, alerts.c.device_id).in_(keys), alerts.c.status.in_(OPEN))
        .values(status="resolved", resolved_at=func.now(), resolve_comment=comment)
        .returning(*alerts.c)
    )
    return [dict(r) for r in conn.execute(statement).mappings()]


def open_pairs(engine: Engine) -> tuple[set[tuple[str, str]], dict[tuple[str, str], int]]:
    """Open (rule, device) pairs and the newest trigger time of every pair (for cooldowns)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(alerts.c.rule_id, alerts.c.device_id, alerts.c.status, func.max(alerts.c.triggered_at))
            .where(alerts.c.rule_id.is_not(None), alerts.c.device_id.is_not(None))
            .group_by(alerts.c.rule_id, alerts.c.device_id, alerts.c.status)
        ).all()
    opened: set[tuple[str, str]] = set()
    last: dict[tuple[str, str], int] = {}
    for rule_id, device_id, status, newest in rows:
        pair = (str(rule_id), str(device_id))
        if status in OPEN:
            opened.add(pair)
        if newest is not None:
            last[pair] = max(last.get(pair, 0), int(pd.Timestamp(newest).value))
    return opened, last


def transition(
    engine: Engine, alert_id: uuid.UUID, status: str, user_id: uuid.UUID | None, comment: str | None
) -> dict[str, Any] | None:
    """Acknowledge or resolve one alert; None when absent; raises ValueError on a forbidden transition."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        current = (
            conn.execute(select(alerts).where(alerts.c.id == alert_id).with_for_update()).mappings().first()
        )
        if current is None:
            return None
        if current["status"] == "resolved":
            raise ValueError("alert is already resolved")
        if status == "acknowledged":
            if current["status"] == "acknowledged":
                raise ValueError("alert is already acknowledged")
            values = {
                "status": status,
                "acknowledged_by": user_id,
                "acknowledged_at": now,
                "ack_comment": comment,
            }
        else:
            values = {
                "status": status,
                "resolved_by": user_id,
                "resolved_at": now,
                "resolve_comment": comment,
            }
        row = conn.execute(
            update(alerts).where(alerts.c.id == alert_id).values(**values).returning(*alerts.c)
        )
        return dict(row.mappings().one())


def list_filter(
    status: str | None,
    severity: str | None,
    device_id: uuid.UUID | None,
    rule_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
) -> Any:
    """The WHERE clause of an alert listing."""
    clauses: list[Any] = []
    if status == "open":
        clauses.append(alerts.c.status.in_(OPEN))
    elif status:
        clauses.append(alerts.c.status == status)
    if severity:
        clauses.append(alerts.c.severity == severity)
    if device_id:
        clauses.append(alerts.c.device_id == device_id)
    if rule_id:
        clauses.append(alerts.c.rule_id == rule_id)
    when = func.coalesce(alerts.c.triggered_at, alerts.c.created_at)
    if since:
        clauses.append(when >= since)
    if until:
        clauses.append(when < until)
    return and_(*clauses) if clauses else or_(True)  # type: ignore[arg-type]


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    """An alert row as JSON-friendly values (ISO times, string ids)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[name] = value
    out["timestamp"] = out.get("triggered_at") or out.get("created_at")
    return out


def publish_update(platform: Platform, row: dict[str, Any]) -> None:
    """Tell Socket.IO (bus ``alert.update``) that an alert changed status."""
    body = as_json(row)
    platform.bus.publish(ALERT_UPDATE, {**body, "timestamp": datetime.now(UTC).isoformat()})


def change(
    platform: Platform, alert_id: uuid.UUID, status: str, user_id: uuid.UUID | None, comment: str | None
) -> dict[str, Any] | None:
    """Acknowledge or resolve an alert and announce it: the one path of the API and the UI.

    None when the alert is absent; ValueError on a forbidden transition. The ``alert.update`` event carries
    the whole row (``rule_id`` and ``device_id`` included, which the engine's cooldowns need).
    """
    row = transition(platform.engine, alert_id, status, user_id, comment)
    if row is not None:
        publish_update(platform, row)
    return row


def publish_new(platform: Platform, row: dict[str, Any]) -> None:
    """Announce a new alert on the bus (``alert``) and on MQTT ``insa/alerts/{severity}``."""
    body = as_json(row)
    platform.bus.publish(ALERT, body)
    if platform.mqtt is not None:
        platform.mqtt.publish(f"insa/alerts/{row['severity']}", body)
