"""Rollups folded from bus batches equal rollups recomputed from raw rows, whatever the batch split."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, delete, insert, select

from workbench.db.engine import sqlalchemy_url
from workbench.db.rollups import RollupMaintainer, rebuild
from workbench.db.tables import devices, telemetry, telemetry_1h, telemetry_1m
from workbench.live.bus import TELEMETRY_BATCH, EventBus
from workbench.live.events import TelemetryBatch


@pytest.fixture(scope="module")
def engine(database_url: str) -> Engine:
    return create_engine(sqlalchemy_url(database_url))


def _points(device_id: uuid.UUID, count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = datetime(2026, 3, 1, 10, 58, tzinfo=UTC)
    offsets = rng.permutation(count)  # out of order on purpose
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([start + timedelta(seconds=int(o) * 7) for o in offsets], utc=True),
            "device_id": str(device_id),
            "key": np.where(rng.random(count) < 0.5, "flow", "pressure"),
            "value": rng.normal(50, 10, count).round(3),
            "unit": None,
            "quality": 100,
        }
    )


def _rollup(engine: Engine, device_id: uuid.UUID) -> dict[str, list[tuple]]:
    out = {}
    with engine.connect() as conn:
        for table in (telemetry_1m, telemetry_1h):
            rows = conn.execute(
                select(table).where(table.c.device_id == device_id).order_by(table.c.key, table.c.bucket)
            ).all()
            out[table.name] = [
                (
                    r.key,
                    r.bucket,
                    r.count,
                    round(r.sum, 6),
                    round(r.sumsq, 3),
                    r.min,
                    r.max,
                    r.min_at,
                    r.max_at,
                    r.first,
                    r.first_at,
                    r.last,
                    r.last_at,
                )
                for r in rows
            ]
    return out


def test_bus_batches_fold_into_the_same_rollups_as_a_rebuild(engine: Engine) -> None:
    with engine.begin() as conn:
        device_id = conn.execute(
            insert(devices).values(name="rolled", type="sensor").returning(devices.c.id)
        ).scalar_one()
    frame = _points(device_id, 1500, seed=3)
    with engine.begin() as conn:
        conn.execute(
            insert(telemetry),
            [
                {
                    "timestamp": row.timestamp.to_pydatetime(),
                    "device_id": device_id,
                    "key": row.key,
                    "value": row.value,
                }
                for row in frame.itertuples()
            ],
        )
    bus = EventBus()
    maintainer = RollupMaintainer(engine, bus, flush_seconds=60).start()
    for index, rows in enumerate(np.array_split(np.arange(len(frame)), 7)):
        part = frame.iloc[rows]
        bus.publish(TELEMETRY_BATCH, TelemetryBatch(part.reset_index(drop=True), "test", datetime.now(UTC)))
        if index == 3:
            maintainer.flush()  # buckets already in the table get added to, not replaced
    maintainer.stop()
    folded = _rollup(engine, device_id)
    assert len(folded["telemetry_1h"]) >= 4 and len(folded["telemetry_1m"]) > 100
    assert sum(row[2] for row in folded["telemetry_1h"]) == 1500

    with engine.begin() as conn:
        for table in (telemetry_1m, telemetry_1h):
            conn.execute(delete(table).where(table.c.device_id == device_id))
    rebuild(engine, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert _rollup(engine, device_id) == folded


EXTREMES = [
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e308,
    -1e308,
    1e200,
    -1e200,
    5e-324,
    -5e-324,
    -0.0,
    0.0,
]


def test_extreme_values_never_break_a_rebuild_or_a_fold(engine: Engine) -> None:
    """The double range's edges: the rebuild and the upsert clamp to +-inf or 0 instead of raising."""
    with engine.begin() as conn:
        device_id = conn.execute(
            insert(devices).values(name="extreme", type="sensor").returning(devices.c.id)
        ).scalar_one()
    start = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    rows = [
        {"timestamp": start + timedelta(seconds=index), "device_id": device_id, "key": "v", "value": value}
        for index, value in enumerate(EXTREMES * 2)
    ]
    with engine.begin() as conn:
        conn.execute(insert(telemetry), rows)
    rebuild(engine, start, start + timedelta(hours=1))
    with engine.connect() as conn:
        hour = conn.execute(select(telemetry_1h).where(telemetry_1h.c.device_id == device_id)).one()
    assert hour.count == len(rows)
    assert hour.sum == 0.0  # every value comes with its opposite: the exact sum is 0
    assert hour.sumsq == float("inf")
    assert (hour.min, hour.max) == (-1.7976931348623157e308, 1.7976931348623157e308)

    # Folding the same points again through the bus adds finite sums beyond the double range.
    frame = pd.DataFrame(rows).assign(device_id=str(device_id), unit=None, quality=100)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    big = frame[frame["value"] > 1e250]
    bus = EventBus()
    maintainer = RollupMaintainer(engine, bus, flush_seconds=60, repair=False).start()
    for _ in range(2):
        bus.publish(TELEMETRY_BATCH, TelemetryBatch(big.reset_index(drop=True), "test", datetime.now(UTC)))
        maintainer.flush()
    maintainer.stop()
    with engine.connect() as conn:
        minute = conn.execute(
            select(telemetry_1m).where(telemetry_1m.c.device_id == device_id, telemetry_1m.c.key == "v")
        ).one()
    assert minute.count == len(rows) + 2 * len(big)
    assert minute.sum == float("inf")
