"""Scale-out: two ingest services in one MQTT 5 shared-subscription group split the messages, none lost."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from sqlalchemy import Engine, distinct, func, select

from ingest.service import IngestService
from tests.ingest.conftest import count_rows, make_device, wait_until
from tests.ingest.test_mqtt import publish
from workbench.db.tables import telemetry
from workbench.live.bus import EventBus
from workbench.settings import Settings

pytestmark = pytest.mark.mosquitto  # shared subscriptions are MQTT 5: amqtt refuses the group (one line)


def test_shared_subscription_splits_the_load(settings: Settings, engine: Engine, mqtt_url: str) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    workers = [
        IngestService(
            replace(settings, mqtt_url=mqtt_url, ingest_shared_group=group, ingest_client_id=f"{group}-{n}"),
            engine,
            EventBus(),
        )
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    device = make_device(engine)
    try:
        publish(mqtt_url, [(f"insa/devices/{device}/telemetry/n", str(i), 1) for i in range(2000)])
        wait_until(lambda: distinct_values(engine, device) == 2000, timeout=30)
    finally:
        for worker in workers:
            worker.stop()
    received = [worker.mqtt.received for worker in workers if worker.mqtt is not None]
    assert all(count > 0 for count in received)  # each got a share
    # QoS 1 is at least once: a message redelivered after a lost PUBACK may be stored twice, never lost.
    assert sum(received) >= 2000
    assert count_rows(engine, device) >= 2000


def distinct_values(engine: Engine, device_id: uuid.UUID) -> int:
    """How many different values the device's rows hold (each published message carried its own)."""
    with engine.connect() as conn:
        query = select(func.count(distinct(telemetry.c.value))).where(telemetry.c.device_id == device_id)
        return int(conn.execute(query).scalar_one())
