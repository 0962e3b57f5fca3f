"""History charts stay within their point budget and keep the data's extremes (read from rollups)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import create_engine, insert

from workbench.db.engine import sqlalchemy_url
from workbench.db.rollups import rebuild
from workbench.db.tables import devices, telemetry
from workbench.ui import queries


def test_long_history_is_bucketed_and_keeps_extremes(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url))
    start = datetime(2026, 2, 1, tzinfo=UTC)
    values = np.sin(np.arange(3 * 1440) / 50.0) * 10 + 20
    with engine.begin() as conn:
        device_id = conn.execute(
            insert(devices).values(name="history", type="sensor").returning(devices.c.id)
        ).scalar_one()
        conn.execute(
            insert(telemetry),
            [
                {
                    "timestamp": start + timedelta(minutes=i),
                    "device_id": device_id,
                    "key": "t",
                    "value": float(v),
                }
                for i, v in enumerate(values)
            ],
        )
    rebuild(engine, start, start + timedelta(days=3))
    end = start + timedelta(days=2, seconds=17)  # an unaligned end, as "now" is
    data = queries.series(engine, str(device_id), "t", start, end, max_points=300)
    assert 0 < len(data["x"]) <= 300
    assert all(lo <= mid <= hi for lo, mid, hi in zip(data["min"], data["y"], data["max"], strict=True))
    in_range = values[: 2 * 1440 + 1]
    assert min(data["min"]) == float(in_range.min())
    assert max(data["max"]) == float(in_range.max())
