"""Fixtures of the ingest tests: an engine on the session database, devices, a running pipeline."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, insert, select

from ingest.mqtt_client import speaks_mqtt5
from ingest.pipeline import Pipeline
from workbench.db.engine import make_engine
from workbench.db.tables import devices, telemetry
from workbench.live.bus import EventBus
from workbench.settings import Settings


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the session database."""
    made = make_engine(database_url, pool_size=2)
    yield made
    made.dispose()


def make_device(engine: Engine, text_keys: list[str] | None = None, name: str = "dev") -> uuid.UUID:
    """Insert a device (optionally with declared text keys) and return its id."""
    with engine.begin() as conn:
        device_id: uuid.UUID = conn.execute(
            insert(devices)
            .values(name=name, type="sensor", config={"text_keys": text_keys or []})
            .returning(devices.c.id)
        ).scalar_one()
    return device_id


@pytest.fixture
def device(engine: Engine) -> uuid.UUID:
    """A fresh device with the text key ``state``."""
    return make_device(engine, ["state"])


@functools.cache
def device_protocol(url: str) -> mqtt.MQTTProtocolVersion:
    """The protocol test devices use on ``url``: MQTT 5, or 3.1.1 on a broker without it (amqtt)."""
    return mqtt.MQTTv5 if speaks_mqtt5(url) is not False else mqtt.MQTTv311


def count_rows(engine: Engine, device_id: uuid.UUID) -> int:
    """Telemetry rows stored for ``device_id``."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(telemetry).where(telemetry.c.device_id == device_id)
            ).scalar_one()
        )


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def bus() -> EventBus:
    """A fresh event bus."""
    return EventBus()


@pytest.fixture
def pipeline(settings: Settings, engine: Engine, bus: EventBus) -> Iterator[Pipeline]:
    """A started pipeline on the session database."""
    made = Pipeline(settings, engine, bus)
    made.start()
    yield made
    made.stop()


@pytest.fixture(scope="session")
def settings_for_fuzz(settings: Settings) -> Settings:
    """The session settings (a separate name so hypothesis tests may take it)."""
    return settings


@pytest.fixture(scope="session")
def fuzz_pipeline(settings: Settings, engine: Engine) -> Iterator[Pipeline]:
    """A session-wide pipeline for property tests (function fixtures do not mix with @given)."""
    made = Pipeline(settings, engine, EventBus())
    made.start()
    yield made
    made.stop()
