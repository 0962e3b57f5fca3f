"""Retention deletes raw telemetry older than the setting, in slices, and nothing newer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, insert, select

from workbench.db import retention
from workbench.db.embedded import scratch_database
from workbench.db.engine import sqlalchemy_url
from workbench.db.tables import devices, telemetry


@pytest.fixture(scope="module")
def private_database_url(postgres_server_url: str) -> Iterator[str]:
    """A database of its own: retention deletes old rows of every device, other tests' rows included."""
    with scratch_database(postgres_server_url, "wb_retention") as url:
        yield url


def test_expired_rows_go_and_recent_rows_stay(private_database_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(sqlalchemy_url(private_database_url))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        device_id = conn.execute(
            insert(devices).values(name="retained", type="sensor").returning(devices.c.id)
        ).scalar_one()
        rows = [
            {
                "timestamp": now - timedelta(days=days, minutes=i),
                "device_id": device_id,
                "key": "k",
                "value": 1.0,
            }
            for days in (40, 31, 29, 1)
            for i in range(5)
        ]
        conn.execute(insert(telemetry), rows)
    monkeypatch.setattr(retention, "SLICE_ROWS", 3)  # several slices
    assert retention.drop_expired(engine, "30 days") >= 10
    with engine.connect() as conn:
        left = conn.execute(
            select(func.count()).select_from(telemetry).where(telemetry.c.device_id == device_id)
        ).scalar_one()
    assert left == 10
    engine.dispose()


def test_job_runs_only_when_retention_is_set(private_database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(private_database_url))
    idle = retention.RetentionJob(engine, None).start()
    assert not idle.running
    idle.stop()
    running = retention.RetentionJob(engine, "3650 days", interval_seconds=60).start()
    assert running.running
    running.stop()
    assert not running.running
    engine.dispose()
