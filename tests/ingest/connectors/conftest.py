"""Fixtures for connector tests: an engine on the session database and a polling helper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from workbench.db.engine import make_engine


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the session's migrated database."""
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def make_device(engine: Engine, protocol: str, config: dict, connection_string: str | None = None) -> Any:
    """Insert a device row and return its id."""
    import uuid

    from sqlalchemy import insert

    from workbench.db.tables import devices

    with engine.begin() as conn:
        return conn.execute(
            insert(devices)
            .values(
                name=f"{protocol}-{uuid.uuid4().hex[:6]}",
                type="sensor",
                protocol=protocol,
                connection_string=connection_string,
                config=config,
            )
            .returning(devices.c.id)
        ).scalar_one()


def device_status(engine: Engine, device_id: Any) -> str:
    """The device's status column."""
    from sqlalchemy import select

    from workbench.db.tables import devices

    with engine.connect() as conn:
        return str(conn.execute(select(devices.c.status).where(devices.c.id == device_id)).scalar_one())


@pytest.fixture(scope="module")
def pipeline(settings: Any, engine: Engine) -> Iterator[Any]:
    """The real ingest pipeline (validation, quarantine, binary COPY writer) on the session database."""
    from ingest.pipeline import Pipeline
    from workbench.live.bus import EventBus

    pipe = Pipeline(settings, engine, EventBus())
    pipe.start()
    yield pipe
    pipe.stop()


def telemetry(engine: Engine, device_id: Any) -> list[Any]:
    """Committed telemetry rows of a device, oldest first."""
    from sqlalchemy import select

    from workbench.db.tables import telemetry as table

    with engine.connect() as conn:
        return list(
            conn.execute(
                select(table).where(table.c.device_id == device_id).order_by(table.c.timestamp)
            ).all()
        )


def quarantined(engine: Engine, device_id: Any) -> list[Any]:
    """Quarantine rows recorded for a device id (as text)."""
    from sqlalchemy import select

    from workbench.db.tables import quarantine

    with engine.connect() as conn:
        return list(conn.execute(select(quarantine).where(quarantine.c.device_id == str(device_id))).all())
