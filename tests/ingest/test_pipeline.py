"""The pipeline: validation rules, quarantine with reasons, COPY, latest values, status, bus events."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from ingest.pipeline import Pipeline
from ingest.points import Reading
from tests.ingest.conftest import count_rows, make_device, wait_until
from workbench.db.tables import devices, latest_values, quarantine, telemetry
from workbench.live.bus import DEVICE_STATUS, TELEMETRY_BATCH, EventBus


def _submit_and_wait(pipeline: Pipeline, readings: list[Reading], source: str = "test") -> Any:
    done = threading.Event()
    result = pipeline.submit(readings, source, done.set)
    assert done.wait(10), "on_committed never ran"
    return result


def test_good_points_are_written_with_unit_quality_and_text(
    pipeline: Pipeline, engine: Engine, device: uuid.UUID
) -> None:
    d = str(device)
    result = _submit_and_wait(
        pipeline,
        [
            Reading(d, "temperature", 21.5, "2026-01-02T03:04:05Z", "C", 90),
            Reading(d, "running", True, 1767323045, None, None),
            Reading(d, "count", 7, 1767323045123),
            Reading(d.upper(), "state", "running"),
        ],
    )
    assert (result.accepted, result.rejected) == (4, [])
    with engine.connect() as conn:
        rows = conn.execute(
            select(telemetry.c.key, telemetry.c.value, telemetry.c.unit, telemetry.c.quality)
            .add_columns(telemetry.c.text_value, telemetry.c.timestamp)
            .where(telemetry.c.device_id == device)
            .order_by(telemetry.c.key)
        ).all()
    by_key = {row.key: row for row in rows}
    assert by_key["temperature"].value == 21.5 and by_key["temperature"].unit == "C"
    assert by_key["temperature"].quality == 90
    assert by_key["temperature"].timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert by_key["running"].value == 1.0 and by_key["running"].quality == 100
    assert by_key["count"].timestamp == datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert by_key["state"].value is None and by_key["state"].text_value == "running"


def test_bad_points_are_quarantined_with_their_reason(
    pipeline: Pipeline, engine: Engine, device: uuid.UUID
) -> None:
    d = str(device)
    unknown = str(uuid.uuid4())
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    bad = [
        Reading(unknown, "t", 1.0),
        Reading("not-a-uuid", "t", 1.0),
        Reading(d, "bad key", 1.0),
        Reading(d, "t", float("nan")),
        Reading(d, "t", float("inf")),
        Reading(d, "t", "hot"),
        Reading(d, "t", None),
        Reading(d, "t", [1]),
        Reading(d, "t", 1.0, "yesterday"),
        Reading(d, "t", 1.0, future),
        Reading(d, "t", 1.0, "1900-01-01T00:00:00Z"),
        Reading(d, "t", 1.0, None, "x" * 30),
        Reading(d, "t", 1.0, None, None, 101),
        Reading(d, "t", 1.0, None, None, "good"),
        Reading(d, "t", 10**400),
    ]
    result = _submit_and_wait(pipeline, [*bad, Reading(d, "t", 2.0)])
    assert result.accepted == 1
    reasons = dict(result.rejected)
    assert sorted(reasons) == list(range(len(bad)))
    assert "unknown device" in reasons[0]
    assert "UUID" in reasons[1]
    assert "invalid key" in reasons[2]
    assert "not finite" in reasons[3] and "not finite" in reasons[4]
    assert "not declared text" in reasons[5]
    assert "missing value" in reasons[6]
    assert "ISO 8601" in reasons[8]
    assert "outside" in reasons[9] and "outside" in reasons[10]
    assert "unit" in reasons[11]
    assert "quality" in reasons[12] and "quality" in reasons[13]
    assert "too large" in reasons[14]
    with engine.connect() as conn:
        stored = conn.execute(
            select(quarantine.c.reason, quarantine.c.payload, quarantine.c.device_id).where(
                quarantine.c.device_id.in_([d, unknown, "not-a-uuid"])
            )
        ).all()
    assert set(reasons.values()) <= {row.reason for row in stored}
    assert all(row.payload for row in stored)
    assert count_rows(engine, device) == 1


def test_latest_values_devices_and_bus_events(settings: Any, engine: Engine) -> None:
    bus = EventBus()
    batches: list[Any] = []
    statuses: list[Any] = []
    bus.subscribe(TELEMETRY_BATCH, lambda topic, payload: batches.append(payload))
    bus.subscribe(DEVICE_STATUS, lambda topic, payload: statuses.append(payload))
    device = make_device(engine)
    pipeline = Pipeline(settings, engine, bus)
    pipeline.start()
    try:
        d = str(device)
        _submit_and_wait(
            pipeline,
            [
                Reading(d, "p", 1.0, "2026-01-01T00:00:02Z", "bar"),
                Reading(d, "p", 3.0, "2026-01-01T00:00:01Z", "bar"),
            ],
            source="mqtt",
        )
        wait_until(lambda: batches and statuses)
        frame = batches[0].frame
        assert list(frame.columns) == ["timestamp", "device_id", "key", "value", "unit", "quality"]
        assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
        assert list(frame["value"]) == [1.0, 3.0] and set(frame["device_id"]) == {d}
        assert batches[0].source == "mqtt"
        assert (statuses[0].device_id, statuses[0].status) == (d, "online")
        with engine.connect() as conn:
            latest = conn.execute(select(latest_values).where(latest_values.c.device_id == device)).one()
            status, last_seen = conn.execute(
                select(devices.c.status, devices.c.last_seen).where(devices.c.id == device)
            ).one()
        assert latest.value == 1.0 and latest.unit == "bar"
        assert status == "online" and last_seen is not None
    finally:
        pipeline.stop()


def test_auto_registration_only_when_the_policy_allows(settings: Any, engine: Engine) -> None:
    from dataclasses import replace

    newcomer = str(uuid.uuid4())
    strict = Pipeline(settings, engine, EventBus())
    assert strict.validator.validate([Reading(newcomer, "t", 1.0)]).rejected
    relaxed = Pipeline(replace(settings, ingest_auto_register=True), engine, EventBus())
    relaxed.start()
    try:
        result = _submit_and_wait(relaxed, [Reading(newcomer, "t", 1.0)])
        assert result.accepted == 1
        with engine.connect() as conn:
            row = conn.execute(select(devices.c.type).where(devices.c.id == uuid.UUID(newcomer))).one()
        assert row.type == "auto"
    finally:
        relaxed.stop()
