"""OPC-UA connector against a real asyncua server: subscription, units, quality, reconnect."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from asyncua import ua
from sqlalchemy import Engine, select

from ingest.connectors.base import DeviceConfig, device_status_setter
from ingest.connectors.manager import ConnectorManager
from ingest.connectors.opcua import OpcUaConnector, quality_of, status_name
from ingest.connectors.runner import ConnectorRunner
from ingest.simulator.opcua_server import OpcUaServer
from tests.conftest import free_port
from tests.ingest.connectors.conftest import device_status, make_device, quarantined, telemetry, wait_until
from workbench.db.tables import devices
from workbench.secrets import DEVICE_CONFIG, merge

VARIABLES = {"Pump1.Pressure": (3.5, "bar"), "Pump1.Flow": (100.0, None)}


@pytest.fixture
def runner() -> Iterator[ConnectorRunner]:
    run = ConnectorRunner()
    yield run
    run.close()


def _connector(engine: Engine, srv: OpcUaServer, sink: Any, password: str = "s3cret") -> OpcUaConnector:
    config = {
        "username": "operator",
        "password": password,
        "endpoint": srv.endpoint,
        "nodes": {srv.node_id("Pump1.Pressure"): "pressure", srv.node_id("Pump1.Flow"): "flow"},
        "sampling_interval_ms": 50,
        "timeout_ms": 1000,
        "backoff_initial_ms": 100,
        "backoff_max_ms": 500,
    }
    device_id = make_device(engine, "opcua", config)
    device = DeviceConfig(device_id, "plc-ua", "opcua", None, config)
    return OpcUaConnector(device, sink, device_status_setter(engine))


def test_status_codes_map_to_quality() -> None:
    assert quality_of(ua.StatusCode(ua.StatusCodes.Good)) == 100
    assert quality_of(ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)) == 50
    assert quality_of(ua.StatusCode(ua.StatusCodes.BadSensorFailure)) == 0


def test_subscription_units_quality_and_reconnects(engine, pipeline, runner) -> None:
    server = OpcUaServer(free_port(), VARIABLES, credentials=("operator", "s3cret"))
    connector = _connector(engine, server, pipeline)  # nothing listens yet
    intruder = _connector(engine, server, pipeline, password="guess")
    device_id = connector.device.id
    runner.start(connector)
    try:
        wait_until(lambda: device_status(engine, device_id) == "error", timeout=5)
        server.start()
        runner.start(intruder)
        wait_until(lambda: {r.key for r in telemetry(engine, device_id)} == {"pressure", "flow"}, timeout=15)
        assert connector.stats.reconnects >= 1
        wait_until(lambda: device_status(engine, device_id) == "online")
        first = {r.key: r for r in telemetry(engine, device_id)}
        assert first["pressure"].unit == "bar" and first["flow"].unit is None
        assert first["pressure"].quality == 100
        # Wrong credentials: the session is refused, the device stays in error, nothing is written.
        assert device_status(engine, intruder.device.id) == "error"
        assert intruder.stats.errors >= 1 and telemetry(engine, intruder.device.id) == []

        server.set("Pump1.Pressure", 4.75, ua.StatusCodes.UncertainLastUsableValue)
        changed = wait_until(lambda: [r for r in telemetry(engine, device_id) if r.value == 4.75])
        assert changed[0].quality == 50 and changed[0].key == "pressure"
        assert changed[0].metadata == {"opcua_status": "UncertainLastUsableValue"}
        server.set("Pump1.Pressure", 0.5, ua.StatusCodes.BadSensorFailure)
        # A Bad sample carries no value: the pipeline quarantines it, status code and reason kept.
        bad = wait_until(lambda: quarantined(engine, device_id))
        assert "missing value" in bad[0].reason and b"BadSensorFailure" in bad[0].payload
        assert bad[0].source == "opcua"

        server.stop()  # the session drops: error, then retries with backoff
        wait_until(lambda: device_status(engine, device_id) == "error", timeout=10)
    finally:
        server.stop()


def test_the_manager_opens_a_sealed_login(engine, pipeline, settings) -> None:
    """The devices API stores the OPC-UA login sealed; the connector manager opens it to log in."""
    server = OpcUaServer(free_port(), VARIABLES, credentials=("operator", "s3cret"))
    server.start()
    config = {
        "username": "operator",
        "password": "s3cret",
        "endpoint": server.endpoint,
        "nodes": {server.node_id("Pump1.Pressure"): "pressure"},
        "sampling_interval_ms": 50,
    }
    sealed = merge(config, None, DEVICE_CONFIG, settings.resolved_secret_key())
    assert "s3cret" not in str(sealed)
    device_id = make_device(engine, "opcua", sealed)
    fast = dataclasses.replace(settings, connectors_reload_s=0.1, sparkplug_enabled=False)
    manager = ConnectorManager(engine, pipeline, fast)
    manager.start()
    try:
        wait_until(lambda: telemetry(engine, device_id), timeout=15)
        assert device_status(engine, device_id) == "online"
    finally:
        manager.stop()


def test_status_codes_are_shown_by_name() -> None:
    assert status_name(ua.StatusCode(2150891520)) == "BadNodeIdUnknown"
    assert status_name(ua.StatusCodes.BadNodeIdUnknown) == "BadNodeIdUnknown"


def test_a_bad_node_is_isolated_and_named(engine, pipeline, runner) -> None:
    server = OpcUaServer(free_port(), VARIABLES)
    server.start()
    try:
        missing = f"ns={server.namespace};s=Pump1.DoesNotExist"
        config = {
            "endpoint": server.endpoint,
            "nodes": {server.node_id("Pump1.Pressure"): "pressure", missing: "ghost"},
            "sampling_interval_ms": 50,
        }
        device_id = make_device(engine, "opcua", config)
        connector = OpcUaConnector(
            DeviceConfig(device_id, "plc-ua", "opcua", None, config), pipeline, device_status_setter(engine)
        )
        runner.start(connector)
        # The good node keeps flowing; the device says which node fails, by status code name.
        wait_until(lambda: telemetry(engine, device_id), timeout=15)
        wait_until(lambda: device_status(engine, device_id) == "degraded")
        with engine.connect() as conn:
            detail = conn.execute(
                select(devices.c.status_detail).where(devices.c.id == device_id)
            ).scalar_one()
        assert detail == f"nodes failing: {missing}: BadNodeIdUnknown"
        assert connector.health()["failed_nodes"] == {missing: "BadNodeIdUnknown"}
        assert connector.stats.reconnects == 0
        server.set("Pump1.Pressure", 7.25)
        wait_until(lambda: [r for r in telemetry(engine, device_id) if r.value == 7.25])
        assert {r.key for r in telemetry(engine, device_id)} == {"pressure"}
    finally:
        server.stop()


def test_only_bad_nodes_is_an_error_naming_them(engine, pipeline, runner) -> None:
    server = OpcUaServer(free_port(), VARIABLES)
    server.start()
    try:
        config = {"endpoint": server.endpoint, "nodes": {"ns=2;s=Nope": "nope"}, "backoff_initial_ms": 100}
        device_id = make_device(engine, "opcua", config)
        connector = OpcUaConnector(
            DeviceConfig(device_id, "plc-ua", "opcua", None, config), pipeline, device_status_setter(engine)
        )
        runner.start(connector)
        wait_until(lambda: device_status(engine, device_id) == "error")
        assert "ns=2;s=Nope: BadNodeIdUnknown" in str(connector.stats.last_error)
        assert "StatusCode(value=" not in str(connector.stats.last_error)
    finally:
        server.stop()
