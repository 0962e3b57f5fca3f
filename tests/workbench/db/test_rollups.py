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
