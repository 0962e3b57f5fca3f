"""The live simulator through the real platform path: MQTT JSON, Sparkplug B and Modbus into PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from sqlalchemy import text

from ingest.broker import LocalBroker
from ingest.connectors.manager import start_connectors
from ingest.device_auth import connect_key_events
from ingest.service import IngestService
from ingest.simulator.live import Endpoints, Simulator
from ingest.simulator.plant import PlantSpec, PumpSpec, TankSpec, ValveSpec
from tests.conftest import broker_kind, free_port
from tests.ingest.connectors.conftest import wait_until
from workbench.db.engine import make_engine
from workbench.live.bus import EventBus
from workbench.mqtt import host_port, make_client
from workbench.platform import Platform


def _plant() -> PlantSpec:
    name = f"sim-{uuid.uuid4().hex[:6]}"
    return PlantSpec(
        name=name,
        seed=3,
        pumps=[
            PumpSpec(name="p-json", tank="t", valve="v", transport="mqtt"),
            PumpSpec(name="p-spb", tank="t", valve="v", transport="sparkplug"),
            PumpSpec(name="p-modbus", tank="t", valve="v", transport="modbus"),
        ],
        tanks=[TankSpec(name="t")],
        valves=[ValveSpec(name="v")],
    )


def test_simulated_plant_reaches_postgres_over_every_transport(settings, mqtt_url) -> None:
    config = dataclasses.replace(
        settings, mqtt_url=mqtt_url, connectors_reload_s=0.2, sparkplug_host_id=f"h{uuid.uuid4().hex[:6]}"
    )
    assert config.database_url
    engine = make_engine(config.database_url)
    platform = Platform(settings=config, engine=engine, bus=EventBus())
    service = IngestService(config, engine, platform.bus)
    service.start()
    platform.services.pipeline = service.pipeline
    stop_connectors = start_connectors(platform)
    plant = _plant()
    simulator = Simulator(plant, engine, Endpoints(mqtt_url=mqtt_url), speed=30, interval=0.2)

    messages: list[dict] = []
    seen = threading.Event()
    watcher = make_client(mqtt_url, f"watch-{uuid.uuid4().hex[:6]}")

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        # The session's broker carries other tests' messages too (fuzzed, retained): only ours count.
        ours = simulator.ids.get("p-json")
        if ours is not None and message.topic == f"insa/devices/{ours}/telemetry":
            messages.append(json.loads(message.payload))
            seen.set()

    watcher.on_message = on_message
    watcher.connect(*host_port(mqtt_url))
    watcher.subscribe("insa/devices/+/telemetry", qos=1)
    watcher.loop_start()
    try:
        simulator.start()

        def protocols() -> set[str]:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT DISTINCT d.protocol FROM telemetry t JOIN devices d ON d.id = t.device_id "
                        "WHERE d.name LIKE :prefix"
                    ),
                    {"prefix": f"{plant.name}/%"},
                ).scalars()
                return set(rows)

        wait_until(lambda: protocols() == {"mqtt", "sparkplug", "modbus"}, timeout=20)
        assert seen.wait(5)
        message = messages[0]
        assert message["device_id"] == str(simulator.ids["p-json"])
        assert set(message) == {"timestamp", "device_id", "telemetry", "metadata"}
        assert message["telemetry"]["flow"]["unit"] == "m3/h" and message["metadata"]["quality"] == 100
        with engine.connect() as conn:
            units = dict(
                conn.execute(
                    text("SELECT key, unit FROM latest_values WHERE device_id = :d"),
                    {"d": simulator.ids["p-modbus"]},
                ).all()
            )
        assert units["pressure"] == "bar" and units["motor_current"] == "A"
        _, components = platform.health.report()
        assert components["connectors"]["status"] == "up"
        assert components["connectors"]["sparkplug"]["nodes"] >= 1
        assert str(simulator.ids["p-modbus"]) in components["connectors"]["devices"]
    finally:
        watcher.disconnect()
        watcher.loop_stop()
        simulator.stop()
        stop_connectors()
        service.stop()
        engine.dispose()


def test_simulated_devices_log_in_to_a_broker_that_requires_it(settings) -> None:
    """On the default (login-only) broker, MQTT devices and the Sparkplug node use keys of their own."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-test-sim-logins-"))
    folder.chmod(0o755)
    broker = LocalBroker(free_port(), folder, prefer_mosquitto=broker_kind() == "mosquitto")
    url = broker.start()
    assert broker.auth is not None and settings.database_url
    config = dataclasses.replace(settings, mqtt_url=url, sparkplug_host_id=f"h{uuid.uuid4().hex[:6]}")
    engine = make_engine(settings.database_url)
    disconnect = connect_key_events(broker.auth, engine, broker.pid_file)
    platform = Platform(settings=config, engine=engine, bus=EventBus())
    service = IngestService(config, engine, platform.bus)
    service.start()
    platform.services.pipeline = service.pipeline
    stop_connectors = start_connectors(platform)
    plant = _plant()
    plant.pumps = [p for p in plant.pumps if p.transport != "modbus"]
    simulator = Simulator(plant, engine, Endpoints(mqtt_url=url), speed=30, interval=0.2)
    try:
        simulator.start()
        node = f"{plant.name}/edge-1"
        assert {str(simulator.ids["p-json"]), "edge-1"} <= broker.auth.users()  # logins, not anonymous
        with engine.connect() as conn:
            assert (
                conn.execute(text("SELECT count(*) FROM devices WHERE name = :n"), {"n": node}).scalar() == 1
            )

        def protocols() -> set[str]:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT DISTINCT d.protocol FROM telemetry t JOIN devices d ON d.id = t.device_id "
                        "WHERE d.name LIKE :prefix"
                    ),
                    {"prefix": f"{plant.name}/%"},
                ).scalars()
                return set(rows)

        wait_until(lambda: protocols() == {"mqtt", "sparkplug"}, timeout=20)
    finally:
        simulator.stop()
        stop_connectors()
        service.stop()
        disconnect()
        broker.stop()
        engine.dispose()
