"""Aggregates and chart series read from rollups give the answers raw rows give."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, insert

from workbench.db import series
from workbench.db.engine import sqlalchemy_url
from workbench.db.rollups import rebuild
from workbench.db.tables import devices, telemetry

START = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine(database_url: str) -> Engine:
    return create_engine(sqlalchemy_url(database_url))


@pytest.fixture(scope="module")
def device(engine: Engine) -> uuid.UUID:
    rng = np.random.default_rng(11)
    with engine.begin() as conn:
        device_id = conn.execute(
            insert(devices).values(name="rolled-series", type="sensor").returning(devices.c.id)
        ).scalar_one()
        seconds = np.sort(rng.choice(48 * 3600, size=6000, replace=False))
        conn.execute(
            insert(telemetry),
            [
                {
                    "timestamp": START + timedelta(seconds=int(s)),
                    "device_id": device_id,
                    "key": "temp",
                    "value": float(v),
                }
                for s, v in zip(seconds, rng.normal(60, 5, seconds.size).round(4), strict=True)
            ],
        )
    rebuild(engine, START, START + timedelta(days=2))
    return device_id


def _close(left: list[dict], right: list[dict]) -> None:
    assert [row["bucket"] for row in left] == [row["bucket"] for row in right]
    for a, b in zip(left, right, strict=True):
        for name, value in a["values"].items():
            assert math.isclose(value, b["values"][name], rel_tol=1e-9, abs_tol=1e-9), name


@pytest.mark.parametrize(
    ("step", "zone", "table"),
    [
        (timedelta(hours=1), "UTC", "telemetry_1h"),
        (timedelta(minutes=15), "UTC", "telemetry_1m"),
        ("day", "Europe/Paris", "telemetry_1h"),
        ("day", "Asia/Kolkata", "telemetry_1m"),  # +05:30: hours do not tile its days, minutes do
    ],
)
def test_rollup_aggregates_equal_raw(
    engine: Engine, device: uuid.UUID, step: timedelta | str, zone: str, table: str
) -> None:
    functions = list(series.FUNCTIONS)
    end = START + timedelta(days=2)
    assert series._rollup_for(START, end, step, zone) == table
    fast = series.aggregate(engine, device, ["temp"], START, end, step, functions, zone)
    raw = series.aggregate(engine, device, ["temp"], START, end, step, functions, zone, use_rollups=False)
    assert len(raw) >= 2
    _close(fast, raw)


def test_unaligned_ranges_read_raw_rows() -> None:
    assert (
        series._rollup_for(
            START + timedelta(seconds=30), START + timedelta(hours=5), timedelta(hours=1), "UTC"
        )
        is None
    )


def test_rollup_chart_series_equals_raw(engine: Engine, device: uuid.UUID) -> None:
    end = START + timedelta(days=2)
    fast = series.downsample(engine, device, "temp", START, end, points=12)
    raw = series.downsample(engine, device, "temp", START, end, points=12, use_rollups=False)
    assert len(fast) == 12
    assert fast == raw
