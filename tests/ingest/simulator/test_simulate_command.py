"""`workbench simulate`: plant file, seed and fault on the command line; devices provisioned; MQTT out."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from app import cli
from ingest.simulator.plant import PlantSpec, PumpSpec, TankSpec, ValveSpec
from workbench.db.engine import make_engine
from workbench.db.tables import devices
from workbench.mqtt import host_port, make_client


# On the shared in-process amqtt broker, after the demo and live-simulator tests, amqtt stalls
# ("Timeout waiting for PUBACK") and this watcher hears nothing; alone, and on Mosquitto, it passes.
@pytest.mark.mosquitto
def test_simulate_provisions_devices_and_publishes(tmp_path: Path, database_url: str, mqtt_url: str) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    plant = PlantSpec(
        name=name,
        pumps=[PumpSpec(name="p1", tank="t1", valve="v1")],
        tanks=[TankSpec(name="t1")],
        valves=[ValveSpec(name="v1")],
    )
    plant_file = tmp_path / "plant.json"
    plant_file.write_text(json.dumps(plant.to_dict()))
    received: list[dict] = []
    got = threading.Event()
    client = make_client(mqtt_url, f"cli-watch-{uuid.uuid4().hex[:6]}")

    def on_message(c: mqtt.Client, u: object, message: mqtt.MQTTMessage) -> None:
        received.append(json.loads(message.payload))
        got.set()

    client.on_message = on_message
    client.connect(*host_port(mqtt_url))
    client.subscribe("insa/devices/+/telemetry", qos=1)
    client.loop_start()
    try:
        result = CliRunner().invoke(
            cli,
            [
                *("simulate", "--plant", str(plant_file), "--seed", "5", "--duration", "1.5"),
                *("--interval", "0.25", "--speed", "20", "--fault", "p1:bearing_wear@0*2"),
            ],
            env={
                "WORKBENCH_DATABASE_URL": database_url,
                "WORKBENCH_MQTT_URL": mqtt_url,
                "WORKBENCH_DATA_DIR": str(tmp_path / "var"),
            },
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        assert got.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()
    engine = make_engine(database_url, pool_size=1)
    with engine.connect() as conn:
        rows = conn.execute(
            select(devices.c.id, devices.c.name, devices.c.type).where(devices.c.name.like(f"{name}/%"))
        )
        found = {row.name: row for row in rows}
    engine.dispose()
    assert set(found) == {f"{name}/p1", f"{name}/t1", f"{name}/v1"}
    assert found[f"{name}/p1"].type == "pump"
    # amqtt also hands a connecting client the retained messages of others' subscriptions (config, STATE).
    ours = [m for m in received if m.get("device_id") == str(found[f"{name}/p1"].id)]
    assert len(ours) >= 3
    # The bearing-wear fault shows: vibration climbs across the run.
    assert ours[-1]["telemetry"]["vibration"]["value"] > ours[0]["telemetry"]["vibration"]["value"]

    bad = CliRunner().invoke(
        cli, ["simulate", "--fault", "pump-1:melting"], env={"WORKBENCH_DATABASE_URL": database_url}
    )
    assert bad.exit_code == 1 and "unknown fault" in bad.output
