"""MQTT ingest against a real broker: the design's topics, MQTT 3.1.1 and 5, QoS 0 and 1, real clients."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, select

from ingest.service import IngestService
from tests.ingest.conftest import count_rows, device_protocol, make_device, wait_until
from workbench.db.tables import devices, quarantine, telemetry
from workbench.live.bus import DEVICE_STATUS, EventBus
from workbench.mqtt import host_port, make_client
from workbench.settings import Settings


@pytest.fixture
def service(settings: Settings, engine: Engine, mqtt_url: str) -> Iterator[IngestService]:
    """An ingest service with its own persistent session on the session broker."""
    configured = replace(settings, mqtt_url=mqtt_url, ingest_client_id=f"test-ingest-{uuid.uuid4().hex[:8]}")
    made = IngestService(configured, engine, EventBus())
    made.start()
    yield made
    made.stop()


def publish(
    url: str, messages: list[tuple[str, Any, int]], protocol: mqtt.MQTTProtocolVersion | None = None
) -> None:
    """Publish (topic, payload, qos) messages with paho and wait until the broker has each.

    MQTT 5 unless ``protocol`` says otherwise or the broker refuses it (amqtt: then 3.1.1).
    """
    client = make_client(url, protocol=protocol or device_protocol(url))
    host, port = host_port(url)
    client.connect(host, port)
    client.loop_start()
    try:
        for topic, payload, qos in messages:
            body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
            client.publish(topic, body, qos=qos).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_design_message_single_keys_and_status(service: IngestService, engine: Engine, mqtt_url: str) -> None:
    device = make_device(engine, ["mode"])
    base = f"insa/devices/{device}"
    statuses: list[Any] = []
    service.bus.subscribe(DEVICE_STATUS, lambda topic, payload: statuses.append(payload))
    message = {
        "timestamp": "2026-01-01T00:00:00Z",
        "device_id": str(device),
        "telemetry": {"temperature": {"value": 25.5, "unit": "C"}, "humidity": {"value": 65, "unit": "%"}},
        "metadata": {"quality": 90, "source": "sensor-1"},
    }
    publish(
        mqtt_url,
        [
            (f"{base}/status", "online", 1),
            (f"{base}/telemetry", message, 1),
            (f"{base}/telemetry/pressure", "1.25", 1),
            (f"{base}/telemetry/flow", {"value": 3, "unit": "l/s", "quality": 80}, 0),
            (f"{base}/telemetry/mode", "auto", 1),
        ],
    )
    wait_until(lambda: count_rows(engine, device) == 5)
    with engine.connect() as conn:
        rows = {r.key: r for r in conn.execute(select(telemetry).where(telemetry.c.device_id == device))}
    assert rows["temperature"].unit == "C" and rows["temperature"].quality == 90
    assert rows["temperature"].metadata == {"source": "sensor-1"}
    assert rows["pressure"].value == 1.25 and rows["flow"].quality == 80
    assert rows["mode"].text_value == "auto"
    publish(mqtt_url, [(f"{base}/status", "offline", 1)])
    wait_until(lambda: any(s.status == "offline" for s in statuses))
    with engine.connect() as conn:
        assert conn.execute(select(devices.c.status).where(devices.c.id == device)).scalar_one() == "offline"


def test_malformed_messages_are_quarantined_with_topic_and_reason(
    service: IngestService, engine: Engine, mqtt_url: str
) -> None:
    device = make_device(engine)
    base = f"insa/devices/{device}"
    publish(
        mqtt_url,
        [
            (f"{base}/telemetry", b"{broken", 1),
            (f"{base}/telemetry", {"telemetry": "nope"}, 1),
            (f"{base}/status", "sleepy", 1),
            (f"{base}/telemetry/t", "hot", 1),
        ],
    )

    def stored() -> list[Any]:
        with engine.connect() as conn:
            found = conn.execute(select(quarantine).where(quarantine.c.device_id == str(device))).all()
        return found if len(found) == 4 else []

    rows = wait_until(stored)
    reasons = sorted(row.reason for row in rows)
    assert any("not JSON" in r for r in reasons) and any("telemetry" in r for r in reasons)
    assert any("status must be" in r for r in reasons) and any("not declared text" in r for r in reasons)
    assert {row.source for row in rows} == {"mqtt"}
    assert b"{broken" in {bytes(row.payload) for row in rows}


@pytest.mark.mosquitto_clients
@pytest.mark.parametrize(
    ("version", "qos"),
    [
        # amqtt drops the QoS 0 message of a client that disconnects at once while it still sends the
        # retained messages of others' subscriptions (README, "Start here"): Mosquitto only.
        pytest.param("mqttv311", "0", marks=pytest.mark.mosquitto),
        ("mqttv311", "1"),
        pytest.param("mqttv5", "1", marks=pytest.mark.mosquitto),
    ],
)
def test_mosquitto_pub_clients(
    service: IngestService, engine: Engine, mqtt_url: str, version: str, qos: str
) -> None:
    device = make_device(engine)
    host, port = host_port(mqtt_url)
    for value in ("1", "2", "true"):
        topic = f"insa/devices/{device}/telemetry/level"
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                host,
                "-p",
                str(port),
                "-V",
                version,
                "-q",
                qos,
                "-t",
                topic,
                "-m",
                value,
            ],
            check=True,
            timeout=10,
        )
    wait_until(lambda: count_rows(engine, device) == 3)


def test_burst_with_messages_larger_than_the_read_buffer(
    service: IngestService, engine: Engine, mqtt_url: str
) -> None:
    """Packets split across socket reads, and bigger than the 64 KiB buffer, arrive whole and acked."""
    device = make_device(engine)
    base = f"insa/devices/{device}/telemetry"
    big = {"telemetry": {f"k{i}": {"value": i * 0.5, "unit": "C"} for i in range(4000)}}  # ~130 KB
    small = [(f"{base}/level", str(i), 1) for i in range(300)]
    messages: list[tuple[str, Any, int]] = [*small[:150], (base, big, 1), *small[150:], (base, big, 0)]
    publish(mqtt_url, messages)
    wait_until(lambda: count_rows(engine, device) == 300 + 2 * 4000, timeout=30)
    mqtt_ingest = service.mqtt
    assert mqtt_ingest is not None
    wait_until(lambda: mqtt_ingest.acked >= 301)
