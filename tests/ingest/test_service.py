"""The ingest service as `workbench up` runs it (in-process, on the web app's bus) and the status watcher."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from ingest.http import pipeline_of
from ingest.service import start_in_process
from ingest.status import StatusWatcher
from tests.ingest.conftest import make_device, wait_until
from tests.ingest.test_mqtt import publish
from workbench.db.tables import devices
from workbench.live.bus import DEVICE_STATUS, TELEMETRY_BATCH, EventBus
from workbench.platform import Platform
from workbench.settings import Settings


def test_in_process_ingest_refuses_a_second_pipeline(settings: Settings, engine: Engine) -> None:
    platform = Platform(settings=settings, engine=engine, bus=EventBus())
    first = pipeline_of(platform)  # HTTP ingest's own, as when a request came before ingest started
    try:
        with pytest.raises(RuntimeError, match="already has an ingest pipeline"):
            start_in_process(platform)
        assert platform.services.pipeline is first and platform.services.ingest is None
    finally:
        first.stop()


def test_in_process_ingest_publishes_on_the_web_bus(
    settings: Settings, engine: Engine, mqtt_url: str
) -> None:
    configured = replace(settings, mqtt_url=mqtt_url, ingest_client_id=f"test-up-{uuid.uuid4().hex[:8]}")
    platform = Platform(settings=configured, engine=engine, bus=EventBus())
    batches: list[Any] = []
    platform.bus.subscribe(TELEMETRY_BATCH, lambda topic, payload: batches.append(payload))
    stop = start_in_process(platform)
    try:
        assert platform.services.pipeline is platform.services.ingest.pipeline
        device = make_device(engine)
        publish(mqtt_url, [(f"insa/devices/{device}/telemetry/rpm", "1500", 1)])
        wait_until(lambda: any(str(device) in set(b.frame["device_id"]) for b in batches))
        healthy, components = platform.health.report()
        assert healthy and components["ingest"]["mqtt"]["acked"] >= 1
    finally:
        stop()


def test_silent_devices_go_offline_with_an_event(engine: Engine) -> None:
    device = make_device(engine)
    with engine.begin() as conn:
        conn.execute(
            update(devices)
            .where(devices.c.id == device)
            .values(status="online", last_seen=datetime.now(UTC) - timedelta(seconds=120))
        )
    bus = EventBus()
    events: list[Any] = []
    bus.subscribe(DEVICE_STATUS, lambda topic, payload: events.append(payload))
    assert str(device) in StatusWatcher(engine, bus, offline_after=60).sweep()
    assert any(e.device_id == str(device) and e.status == "offline" for e in events)
    with engine.connect() as conn:
        assert conn.execute(select(devices.c.status).where(devices.c.id == device)).scalar_one() == "offline"
