"""Ingest on the in-process amqtt broker (a machine without Mosquitto): MQTT 3.1.1 only, real clients."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, select

from ingest.broker import LocalBroker
from ingest.mqtt_client import speaks_mqtt5
from ingest.mqtt_ingest import BrokerProtocolError, MqttIngest
from ingest.service import IngestService, run_standalone
from tests.conftest import free_port
from tests.ingest.conftest import count_rows, make_device, wait_until
from tests.ingest.test_mqtt import publish
from workbench.auth.users import create_user
from workbench.db.tables import quarantine, telemetry
from workbench.live.bus import EventBus
from workbench.mqtt import MqttPublisher, host_port, make_client
from workbench.settings import Settings


@pytest.fixture(scope="module")
def amqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The in-process amqtt broker ``workbench up`` starts when Mosquitto is missing."""
    # Anonymous by choice, as the session broker (tests/conftest.py); logins: test_broker_logins.py.
    folder = tmp_path_factory.mktemp("amqtt")
    broker = LocalBroker(free_port(), folder, prefer_mosquitto=False, allow_anonymous=True)
    url = broker.start()
    assert broker.kind == "amqtt"
    yield url
    broker.stop()


def _configured(settings: Settings, url: str, client_id: str | None = None) -> Settings:
    return replace(settings, mqtt_url=url, ingest_client_id=client_id or f"test-amqtt-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def service(settings: Settings, engine: Engine, amqtt_url: str) -> Iterator[IngestService]:
    """An ingest service on amqtt, with its own persistent session."""
    made = IngestService(_configured(settings, amqtt_url), engine, EventBus())
    made.start()
    yield made
    made.stop()


def test_amqtt_refuses_mqtt5_and_mosquitto_accepts_it(amqtt_url: str, mqtt_url: str) -> None:
    assert speaks_mqtt5(amqtt_url) is False  # the reason ingest falls back at all
    assert speaks_mqtt5(f"mqtt://127.0.0.1:{free_port()}") is None  # nobody there: no answer, no guess
    if speaks_mqtt5(mqtt_url):  # the session broker is Mosquitto (unless WORKBENCH_TEST_BROKER=amqtt)
        ingest = MqttIngest(
            mqtt_url, pipeline=None, client_id=f"test-v5-{uuid.uuid4().hex[:8]}", subscribe=False
        )  # type: ignore[arg-type]
        ingest.start()
        assert ingest.v5 and ingest.health()["protocol"] == "5"  # MQTT 5 stays the first choice
        ingest.end_session()


def test_mqtt311_devices_single_values_and_json_at_qos_1_and_0(
    service: IngestService, engine: Engine, amqtt_url: str
) -> None:
    assert service.mqtt is not None and not service.mqtt.v5
    assert service.health()["mqtt"]["protocol"] == "3.1.1"
    device = make_device(engine, ["mode"])
    base = f"insa/devices/{device}"
    message = {
        "timestamp": "2026-01-01T00:00:00Z",
        "device_id": str(device),
        "telemetry": {"temperature": {"value": 25.5, "unit": "C"}, "humidity": {"value": 65, "unit": "%"}},
        "metadata": {"quality": 90, "source": "sensor-1"},
    }
    publish(
        amqtt_url,
        [
            (f"{base}/telemetry", message, 1),
            (f"{base}/telemetry/pressure", "1.25", 1),
            (f"{base}/telemetry/rpm", "1500", 0),
            (f"{base}/telemetry/flow", {"value": 3, "unit": "l/s", "quality": 80}, 0),
            (f"{base}/telemetry", {"telemetry": {"level": {"value": 7}}}, 0),
            (f"{base}/telemetry/mode", "auto", 1),
        ],
        protocol=mqtt.MQTTv311,
    )
    wait_until(lambda: count_rows(engine, device) == 7)
    with engine.connect() as conn:
        rows = {r.key: r for r in conn.execute(select(telemetry).where(telemetry.c.device_id == device))}
    # Wrong offsets in a 3.1.1 PUBLISH (no properties field) would cut the topic or the payload.
    assert rows["temperature"].unit == "C" and rows["temperature"].quality == 90
    assert rows["temperature"].metadata == {"source": "sensor-1"}
    assert rows["pressure"].value == 1.25 and rows["rpm"].value == 1500 and rows["level"].value == 7
    assert rows["flow"].quality == 80 and rows["mode"].text_value == "auto"
    # The three QoS 1 messages were acknowledged after their commit (manual acks, as at MQTT 5).
    wait_until(lambda: service.mqtt is not None and service.mqtt.acked >= 3 and service.mqtt.settled)


def test_many_messages_take_the_fast_path_intact(
    service: IngestService, engine: Engine, amqtt_url: str
) -> None:
    device = make_device(engine)
    base = f"insa/devices/{device}/telemetry"
    client = make_client(amqtt_url, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(200)
    client.connect(*host_port(amqtt_url))
    client.loop_start()
    try:
        # Many PUBLISH packets per socket read: the buffered drain parses them at MQTT 3.1.1 offsets.
        infos = [client.publish(f"{base}/seq", str(value), qos=1) for value in range(500)]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    wait_until(lambda: count_rows(engine, device) == 500, timeout=30)
    with engine.connect() as conn:
        values = conn.execute(select(telemetry.c.value).where(telemetry.c.device_id == device)).scalars()
        assert sorted(values) == list(range(500))


def test_invalid_messages_are_quarantined(service: IngestService, engine: Engine, amqtt_url: str) -> None:
    device = make_device(engine)
    base = f"insa/devices/{device}"
    publish(
        amqtt_url,
        [(f"{base}/telemetry", b"{broken", 1), (f"{base}/telemetry/t", "hot", 0)],
        protocol=mqtt.MQTTv311,
    )

    def stored() -> list[Any]:
        with engine.connect() as conn:
            found = conn.execute(select(quarantine).where(quarantine.c.device_id == str(device))).all()
        return found if len(found) == 2 else []

    rows = wait_until(stored)
    assert b"{broken" in {bytes(row.payload) for row in rows} and {row.source for row in rows} == {"mqtt"}
    assert any("not JSON" in row.reason for row in rows) and any(
        "not declared text" in r.reason for r in rows
    )
    assert count_rows(engine, device) == 0


def test_platform_publisher_sends_config_and_commands_through_amqtt(amqtt_url: str) -> None:
    device = uuid.uuid4()
    publisher = MqttPublisher(amqtt_url)
    publisher.start()
    try:
        publisher.publish(f"insa/devices/{device}/config", {"interval": 5}, retain=True)
        received: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        subscribed = threading.Event()
        device_client = make_client(amqtt_url, f"device-{device.hex[:8]}", protocol=mqtt.MQTTv311)
        device_client.on_message = lambda c, u, m: received.put((m.topic, m.payload, bool(m.retain)))
        device_client.on_subscribe = lambda *args: subscribed.set()
        device_client.connect(*host_port(amqtt_url))
        device_client.subscribe(f"insa/devices/{device}/#", qos=1)
        device_client.loop_start()
        try:
            assert subscribed.wait(5)
            # The retained config reaches a device that subscribes later (it asks for it on boot).
            topic, payload, retained = received.get(timeout=5)
            assert topic.endswith("/config") and json.loads(payload) == {"interval": 5} and retained
            publisher.publish(f"insa/devices/{device}/command", {"command": "restart"})
            topic, payload, _ = received.get(timeout=5)
            assert topic.endswith("/command") and json.loads(payload) == {"command": "restart"}
            assert publisher.health()["url"].startswith("mqtt://127.0.0.1")
        finally:
            device_client.disconnect()
            device_client.loop_stop()
    finally:
        publisher.stop()


def test_retained_messages_of_other_subscriptions_are_not_quarantined(
    settings: Settings, engine: Engine, amqtt_url: str
) -> None:
    """amqtt 0.12 hands a connecting client the retained messages of all subscriptions; ours does not."""
    device = make_device(engine)
    watcher = make_client(amqtt_url, f"device-{device.hex[:8]}", protocol=mqtt.MQTTv311)
    subscribed = threading.Event()
    watcher.on_subscribe = lambda *args: subscribed.set()
    watcher.connect(*host_port(amqtt_url))
    watcher.subscribe(f"insa/devices/{device}/config", qos=1)
    watcher.loop_start()
    publisher = MqttPublisher(amqtt_url)
    publisher.start()
    try:
        assert subscribed.wait(5)
        publisher.publish(f"insa/devices/{device}/config", {"interval": 5}, retain=True)
        service = IngestService(_configured(settings, amqtt_url), engine, EventBus())
        service.start()  # plain amqtt would hand it the retained config it never subscribed to
        try:
            publish(amqtt_url, [(f"insa/devices/{device}/telemetry/rpm", "1", 1)], protocol=mqtt.MQTTv311)
            wait_until(lambda: count_rows(engine, device) == 1)
            wait_until(lambda: service.mqtt is not None and service.mqtt.settled)
        finally:
            service.stop()
    finally:
        publisher.stop()
        watcher.disconnect()
        watcher.loop_stop()
    assert service.mqtt is not None and service.mqtt.received == 1  # the telemetry, no stray config
    with engine.connect() as conn:
        stray = conn.execute(select(quarantine).where(quarantine.c.device_id == str(device))).all()
    assert stray == []


def test_restart_with_the_same_client_id(settings: Settings, engine: Engine, amqtt_url: str) -> None:
    """What a 3.1.1 session on amqtt keeps across a restart, and what it does not (README's limits)."""
    configured = _configured(settings, amqtt_url)
    device = make_device(engine)
    base = f"insa/devices/{device}/telemetry"
    first = IngestService(configured, engine, EventBus())
    first.start()
    try:
        publish(amqtt_url, [(f"{base}/seq", str(v), 1) for v in range(100)], protocol=mqtt.MQTTv311)
        wait_until(lambda: count_rows(engine, device) == 100)
    finally:
        first.stop()  # everything taken is committed and acknowledged before the disconnect
    assert first.mqtt is not None and first.mqtt.acked == first.mqtt.taken == 100
    # Published while no ingest session is connected: amqtt treats every client of its anonymous
    # listener as anonymous, and keeps neither the session nor QoS 1 messages for one that is away.
    publish(amqtt_url, [(f"{base}/away", str(v), 1) for v in range(20)], protocol=mqtt.MQTTv311)
    second = IngestService(configured, engine, EventBus())
    second.start()
    try:
        # amqtt forgets an anonymous session within a second of its disconnect, so "session present" is
        # a race here; ingest subscribes again at every connect, which is what keeps it working.
        assert second.mqtt is not None and not second.mqtt.v5
        publish(amqtt_url, [(f"{base}/seq", str(v), 1) for v in range(100, 200)], protocol=mqtt.MQTTv311)
        wait_until(lambda: count_rows(engine, device) >= 200)
        time.sleep(1.0)  # anything held back for the session would have arrived with the first packets
    finally:
        second.stop()
    with engine.connect() as conn:
        keys = list(conn.execute(select(telemetry.c.key).where(telemetry.c.device_id == device)).scalars())
    assert keys.count("seq") == 200  # no point lost or written twice across the restart
    # The documented limit: if amqtt starts keeping these, the README's sentence must change.
    assert keys.count("away") == 0


def test_shared_group_and_workers_need_mqtt5(settings: Settings, engine: Engine, amqtt_url: str) -> None:
    shared = replace(_configured(settings, amqtt_url), ingest_shared_group="workbench-ingest")
    service = IngestService(shared, engine, EventBus())
    threads = set(threading.enumerate())
    with pytest.raises(BrokerProtocolError, match=r"speaks only MQTT 3\.1\.1") as refused:
        service.start()
    # What it had started is stopped: a one-line error at start-up must let the process exit.
    assert wait_until(lambda: set(threading.enumerate()) <= threads, timeout=5)
    assert "\n" not in str(refused.value) and "workbench-ingest" in str(refused.value)
    started = time.monotonic()
    with pytest.raises(BrokerProtocolError, match="--workers 2") as workers:
        run_standalone(_configured(settings, amqtt_url), workers=2)  # refused before any process starts
    assert "\n" not in str(workers.value) and time.monotonic() - started < 10


def test_workbench_ingest_refuses_workers_in_one_line(
    database_url: str, amqtt_url: str, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_DATA_DIR=str(tmp_path),
        WORKBENCH_DATABASE_URL=database_url,
        WORKBENCH_MQTT_URL=amqtt_url,
        WORKBENCH_LOG_LEVEL="warning",
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "app", "ingest", "--workers", "2"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip() and "ingest running" not in line]
    assert len(lines) == 1 and "MQTT 3.1.1" in lines[0] and "Traceback" not in result.stderr, result.stderr


@pytest.mark.slow
def test_workbench_up_ingests_through_amqtt(
    database_url: str, engine: Engine, amqtt_url: str, tmp_path: Path
) -> None:
    """`workbench up` on a broker without MQTT 5: healthy, ingest on 3.1.1, a device's point committed."""
    import os
    import signal
    import subprocess
    import sys

    import requests

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_DATA_DIR=str(tmp_path),
        WORKBENCH_DATABASE_URL=database_url,
        WORKBENCH_MQTT_URL=amqtt_url,
        WORKBENCH_PORT=str(port),
        WORKBENCH_INGEST_CLIENT_ID=f"test-up-{uuid.uuid4().hex[:8]}",
        WORKBENCH_LOG_LEVEL="warning",
    )
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "up"], env=env, cwd=root, stderr=subprocess.PIPE, text=True
    )

    def healthy() -> dict[str, Any] | None:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except requests.RequestException:  # not listening yet, or gunicorn's worker not ready yet
            return None
        return response.json() if response.status_code == 200 else None

    try:
        assert wait_until(healthy, timeout=90, interval=0.3) == {"status": "ok"}
        # Component details are for signed-in users.
        email = f"viewer-{uuid.uuid4().hex[:8]}@example.com"
        create_user(engine, email, "viewer", "viewer-password")
        base = f"http://127.0.0.1:{port}"
        body = {"email": email, "password": "viewer-password"}
        login = requests.post(f"{base}/api/v1/auth/login", json=body, timeout=10)
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        health = requests.get(f"{base}/healthz", headers=bearer, timeout=5).json()
        assert health["components"]["ingest"]["mqtt"]["protocol"] == "3.1.1"
        assert health["components"]["mqtt"]["status"] == "up"  # the platform's publisher (3.1.1 already)
        device = make_device(engine)
        publish(amqtt_url, [(f"insa/devices/{device}/telemetry/rpm", "1500", 1)], protocol=mqtt.MQTTv311)
        wait_until(lambda: count_rows(engine, device) == 1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
