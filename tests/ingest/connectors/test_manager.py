"""Connector manager inside ingest: device rows start connectors, edits reload them, data lands in SQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, update

from ingest.connectors import registry
from ingest.connectors.manager import ConnectorManager
from ingest.connectors.modbus_codec import Entry
from ingest.simulator.modbus_server import ModbusServer
from tests.conftest import free_port
from tests.ingest.connectors.conftest import device_status, make_device, telemetry, wait_until
from workbench.db.tables import devices

REGISTERS = [
    {"key": "pressure", "address": 0, "type": "float32", "unit": "bar"},
    {"key": "speed", "address": 2, "type": "uint16", "unit": "rpm"},
]


@pytest.fixture
def server() -> Iterator[ModbusServer]:
    srv = ModbusServer([Entry.parse(r) for r in REGISTERS], free_port())
    srv.start()
    srv.set("pressure", 5.5)
    srv.set("speed", 1450)
    yield srv
    srv.stop()


def test_registry_knows_the_builtin_protocols() -> None:
    assert registry.protocols() == ["modbus", "opcua"]
    schema = registry.connector_for("modbus").configuration_schema()  # type: ignore[union-attr]
    assert "registers" in schema["required"]
    assert registry.connector_for("mqtt") is None


def test_manager_follows_the_devices_table_and_writes_through_the_pipeline(
    engine, pipeline, settings, server, mqtt_url
) -> None:
    config = {"registers": REGISTERS[:1], "interval_ms": 100}
    device_id = make_device(engine, "modbus", config, f"127.0.0.1:{server.port}")
    fast = dataclasses.replace(
        settings, connectors_reload_s=0.1, mqtt_url=mqtt_url, sparkplug_host_id=f"t{uuid.uuid4().hex[:6]}"
    )
    manager = ConnectorManager(engine, pipeline, fast)
    manager.start()
    try:
        rows = wait_until(lambda: telemetry(engine, device_id))
        assert (rows[0].key, rows[0].value, rows[0].unit, rows[0].quality) == ("pressure", 5.5, "bar", 100)
        assert device_status(engine, device_id) == "online"

        # Edit the device (as the devices API does): the new register appears without a restart.
        with engine.begin() as conn:
            conn.execute(
                update(devices)
                .where(devices.c.id == device_id)
                .values(config={**config, "registers": REGISTERS}, updated_at=func.now())
            )
        wait_until(lambda: any(r.key == "speed" and r.value == 1450 for r in telemetry(engine, device_id)))

        health = manager.health()
        assert health["connectors"] >= 1 and health["states"].get("connected", 0) >= 1
        assert health["devices"][str(device_id)]["protocol"] == "modbus"
        assert health["sparkplug"]["state"] in ("connected", "starting")
        metric = REGISTRY.get_sample_value("workbench_connector_readings_total", {"protocol": "modbus"})
        assert metric and metric >= 2

        # A config the connector cannot use is reported, and the device goes to error.
        with engine.begin() as conn:
            conn.execute(
                update(devices)
                .where(devices.c.id == device_id)
                .values(
                    config={"registers": [{"key": "x", "address": 1, "type": "bogus"}]}, updated_at=func.now()
                )
            )
        wait_until(lambda: device_status(engine, device_id) == "error")
        assert "type: Must be one of" in manager.health()["invalid"][str(device_id)]

        with engine.begin() as conn:
            conn.execute(delete(devices).where(devices.c.id == device_id))
        wait_until(lambda: str(device_id) not in manager.health()["devices"])
    finally:
        manager.stop()
