"""Sparkplug B host on a real broker: births register devices, data becomes readings, gaps ask rebirth."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, select

from ingest.connectors import sparkplug_proto as spb
from ingest.connectors.sparkplug import SparkplugHost
from ingest.simulator.sparkplug_node import EdgeNode
from tests.ingest.connectors.conftest import quarantined, telemetry, wait_until
from workbench.db.tables import devices, quarantine
from workbench.mqtt import host_port, make_client

METRICS = {
    "pump1": [("Motor/Current", spb.FLOAT, "A"), ("Delta", spb.INT16, None), ("Running", spb.BOOLEAN, None)]
}


@pytest.fixture
def host(engine: Engine, pipeline: Any, mqtt_url: str) -> Iterator[SparkplugHost]:
    spb_host = SparkplugHost(engine, pipeline, mqtt_url, host_id=f"wb-{uuid.uuid4().hex[:6]}")
    spb_host.start()
    wait_until(lambda: spb_host.stats.state == "connected")
    yield spb_host
    spb_host.stop()


@pytest.fixture
def node(mqtt_url: str) -> Iterator[EdgeNode]:
    edge = EdgeNode(mqtt_url, f"plant-{uuid.uuid4().hex[:6]}", "edge1", METRICS)
    yield edge
    edge.stop()


def _row(engine: Engine, path: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.connection_string == path)).mappings().first()
    return dict(row) if row else None


def test_births_register_devices_and_data_becomes_telemetry(host, node, engine) -> None:
    spb_host = host
    node.values["pump1"].update({"Motor/Current": 12.5, "Delta": -3, "Running": True})
    node.start()
    path = f"spBv1.0/{node.group}/edge1/pump1"
    row = wait_until(lambda: _row(engine, path))
    assert row["protocol"] == "sparkplug" and row["status"] == "online" and row["type"] == "sensor"
    catalogue = row["config"]["sparkplug"]["metrics"]
    assert catalogue["Motor/Current"] == {
        "key": "Motor.Current",
        "datatype": spb.FLOAT,
        "alias": 1,
        "unit": "A",
    }
    assert _row(engine, f"spBv1.0/{node.group}/edge1")["type"] == "gateway"

    born = wait_until(lambda: len(telemetry(engine, row["id"])) >= 3 and telemetry(engine, row["id"]))
    assert {r.key: r.value for r in born} == {"Motor.Current": 12.5, "Delta": -3, "Running": 1.0}
    node.publish("pump1", {"Motor/Current": 13.25, "Delta": -7, "Running": False})
    rows = wait_until(
        lambda: [r for r in telemetry(engine, row["id"]) if r.value == -7] and telemetry(engine, row["id"])
    )
    latest = {r.key: r for r in rows[-3:]}
    assert latest["Motor.Current"].value == pytest.approx(13.25)
    assert latest["Motor.Current"].unit == "A"
    assert latest["Running"].value == 0.0
    assert spb_host.rebirth_requests == 0


def test_sequence_gap_triggers_rebirth_and_death_sets_offline(host, node, engine) -> None:
    spb_host = host
    node.start()
    path = f"spBv1.0/{node.group}/edge1/pump1"
    wait_until(lambda: _row(engine, path))
    node.skip_sequence()
    node.publish("pump1", {"Delta": 1})
    wait_until(lambda: node.rebirths == 1)
    assert spb_host.rebirth_requests == 1
    node.stop()
    wait_until(lambda: _row(engine, path)["status"] == "offline")
    assert _row(engine, f"spBv1.0/{node.group}/edge1")["status"] == "offline"


def test_host_publishes_retained_state(host, mqtt_url) -> None:
    spb_host = host
    got: list[dict] = []
    arrived = threading.Event()
    client = make_client(mqtt_url, f"state-check-{uuid.uuid4().hex[:6]}")

    def on_message(c: mqtt.Client, u: object, message: mqtt.MQTTMessage) -> None:
        # amqtt also hands a connecting client the retained messages of others' subscriptions.
        if message.topic == spb_host.state_topic:
            got.append(json.loads(message.payload))
            arrived.set()

    client.on_message = on_message
    client.connect(*host_port(mqtt_url))
    client.subscribe(spb_host.state_topic, qos=1)
    client.loop_start()
    try:
        assert arrived.wait(5)
        assert got[0]["online"] is True and isinstance(got[0]["timestamp"], int)
    finally:
        client.disconnect()
        client.loop_stop()


def test_unknown_node_without_auto_registration_is_quarantined(engine, pipeline, mqtt_url) -> None:
    spb_host = SparkplugHost(
        engine, pipeline, mqtt_url, host_id=f"wb-{uuid.uuid4().hex[:6]}", auto_register=False
    )
    spb_host.start()
    edge = EdgeNode(mqtt_url, f"plant-{uuid.uuid4().hex[:6]}", "edge9", METRICS)
    try:
        wait_until(lambda: spb_host.stats.state == "connected")
        edge.values["pump1"]["Delta"] = 4
        edge.start()
        path = f"spBv1.0/{edge.group}/edge9/pump1"
        # The pipeline receives the path as device id and quarantines the points with the reason.
        rows = wait_until(lambda: quarantined(engine, path))
        assert rows[0].source == "sparkplug" and "UUID" in rows[0].reason
        assert _row(engine, path) is None
    finally:
        edge.stop()
        spb_host.stop()


def test_undecodable_payload_is_quarantined_with_its_topic(host, engine, mqtt_url) -> None:
    group = f"bad-{uuid.uuid4().hex[:6]}"
    topic = f"spBv1.0/{group}/NDATA/edge1"
    client = make_client(mqtt_url, f"bad-{uuid.uuid4().hex[:6]}")
    client.connect(*host_port(mqtt_url))
    client.loop_start()
    try:
        client.publish(topic, b"\xff\xff not protobuf", qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()

    def rows() -> list:
        with engine.connect() as conn:
            return list(conn.execute(select(quarantine).where(quarantine.c.topic == topic)))

    found = wait_until(rows)
    assert found[0].source == "sparkplug" and "not a Sparkplug B payload" in found[0].reason
    assert found[0].payload == b"\xff\xff not protobuf"


def _birth(seq: int, metrics: list[tuple[str, int, Any]]) -> bytes:
    payload = spb.Payload(timestamp=int(time.time() * 1000), seq=seq)
    for name, datatype, value in metrics:
        spb.set_metric_value(payload.metrics.add(name=name, timestamp=payload.timestamp), datatype, value)
    return payload.SerializeToString()


def test_dbirth_right_after_nbirth_is_stored_not_quarantined(engine, pipeline, mqtt_url) -> None:
    """The normal start-up order: NBIRTH (with node metrics), then DBIRTH well within a second."""
    spb_host = SparkplugHost(engine, pipeline, mqtt_url, host_id=f"wb-{uuid.uuid4().hex[:6]}")
    group = f"order-{uuid.uuid4().hex[:6]}"
    spb_host.handle(
        f"spBv1.0/{group}/NBIRTH/edge1",
        _birth(0, [("bdSeq", spb.INT64, 0), ("Uptime", spb.INT32, 5)]),
    )
    node_id = wait_until(lambda: (_row(engine, f"spBv1.0/{group}/edge1") or {}).get("id"))
    # The node's birth reading went through the pipeline (its lookup missed, then found the new row).
    wait_until(lambda: telemetry(engine, node_id))
    spb_host.handle(f"spBv1.0/{group}/DBIRTH/edge1/tank", _birth(1, [("Level", spb.DOUBLE, 42.5)]))
    device = _row(engine, f"spBv1.0/{group}/edge1/tank")
    assert device is not None and device["status"] == "online"
    stored = wait_until(lambda: telemetry(engine, device["id"]) or quarantined(engine, device["id"]))
    assert not quarantined(engine, device["id"]), "the DBIRTH was refused as an unknown device"
    assert [(r.key, r.value) for r in stored] == [("Level", 42.5)]


def test_a_born_node_is_online_with_last_seen_and_silence_does_not_take_it_offline(
    host, node, engine
) -> None:
    """The node (the gateway) sends only its devices' data: it stays online from NBIRTH to NDEATH."""
    from ingest.status import StatusWatcher
    from workbench.live.bus import EventBus

    node.start()
    path = f"spBv1.0/{node.group}/edge1"
    row = wait_until(lambda: _row(engine, path))
    assert row["status"] == "online" and row["last_seen"] is not None
    watcher = StatusWatcher(engine, EventBus(), offline_after=0.001)
    with engine.begin() as conn:  # as silent as can be: born long ago
        conn.execute(devices.update().where(devices.c.id == row["id"]).values(last_seen=None))
    watcher.sweep()
    assert _row(engine, path)["status"] == "online"
    node.stop()
    wait_until(lambda: _row(engine, path)["status"] == "offline")  # its NDEATH does it
