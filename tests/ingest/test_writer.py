"""The batch writer: latest values held back under load end at the newest point, and survive a crash."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select

from ingest.pipeline import Pipeline
from ingest.points import Reading
from tests.ingest.conftest import make_device
from workbench.db.tables import latest_values, telemetry
from workbench.live.bus import EventBus

START = datetime(2026, 1, 1, tzinfo=UTC)


def _latest(engine: Engine, device: uuid.UUID) -> dict[str, tuple[datetime, float]]:
    with engine.connect() as conn:
        rows = conn.execute(select(latest_values).where(latest_values.c.device_id == device)).all()
    return {row.key: (row.timestamp, row.value) for row in rows}


def test_latest_values_after_a_burst_are_the_newest_points(settings: Any, engine: Engine) -> None:
    device = make_device(engine)
    d = str(device)
    pipeline = Pipeline(settings, engine, EventBus())
    pipeline.writer.batch_size = 50  # many small transactions, most of them with more queued behind
    committed = threading.Semaphore(0)
    submits = 60
    # Queued before the writer starts: every batch but the last finds the queue non-empty.
    for n in range(submits):
        readings = [
            # Each submit holds a newer and an older point per key: only the newest may win.
            Reading(d, key, float(n * 10 + k), (START + timedelta(seconds=n, milliseconds=k)).isoformat())
            for key in ("a", "b", "c")
            for k in (5, 1)
        ]
        pipeline.submit(readings, "test", committed.release)
    pipeline.start()
    try:
        for _ in range(submits):
            assert committed.acquire(timeout=30), "a batch never committed"
        newest = START + timedelta(seconds=submits - 1, milliseconds=5)
        expected = float((submits - 1) * 10 + 5)
        assert _latest(engine, device) == {key: (newest, expected) for key in ("a", "b", "c")}
    finally:
        pipeline.stop()


def test_a_new_process_takes_latest_values_a_crash_held_back(settings: Any, engine: Engine) -> None:
    device, other = make_device(engine), make_device(engine)
    stale, fresh = START, START + timedelta(minutes=5)
    with engine.begin() as conn:
        conn.execute(insert(latest_values).values(device_id=device, key="t", timestamp=stale, value=1.0))
        # Committed (and acknowledged) telemetry whose latest-value upsert the dead process still held.
        conn.execute(
            insert(telemetry).values(device_id=device, key="t", timestamp=fresh, value=2.0, unit="C")
        )
    pipeline = Pipeline(settings, engine, EventBus())
    pipeline.start()
    try:
        done = threading.Event()
        pipeline.submit([Reading(str(other), "x", 1.0)], "test", done.set)
        assert done.wait(10)
        assert _latest(engine, device) == {"t": (fresh, 2.0)}
    finally:
        pipeline.stop()


def test_commits_on_several_connections_are_acknowledged_in_arrival_order(
    settings: Any, engine: Engine
) -> None:
    device = make_device(engine)
    d = str(device)
    pipeline = Pipeline(settings, engine, EventBus())
    pipeline.writer.batch_size = 20  # batches of two items, spread over the writer connections
    acknowledged: list[int] = []
    all_done = threading.Event()
    submits = 80

    def ack(n: int) -> None:
        acknowledged.append(n)
        if len(acknowledged) == submits:
            all_done.set()

    pipeline.start()
    try:
        for n in range(submits):
            readings = [
                Reading(d, f"k{k}", float(n), (START + timedelta(seconds=n)).isoformat()) for k in range(10)
            ]
            pipeline.submit(readings, "test", lambda n=n: ack(n))  # type: ignore[misc]
        assert all_done.wait(30), f"only {len(acknowledged)} of {submits} acknowledged"
        assert acknowledged == list(range(submits))
        with engine.connect() as conn:
            stored = conn.execute(select(telemetry.c.value).where(telemetry.c.device_id == device)).scalars()
            assert sorted(stored) == sorted(float(n) for n in range(submits) for _ in range(10))
    finally:
        pipeline.stop()
