"""Commands delivered in each device's protocol to peers from other implementations (Node: modbus-serial,
node-opcua, Tahu's sparkplug-client), with their status: acknowledged, sent, or failed with the reason."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from ingest.commands import CommandDispatcher
from ingest.connectors.sparkplug import SparkplugHost
from tests.conftest import free_port
from tests.ingest.connectors.conftest import wait_until
from tests.node_peers import NodePeer
from workbench.db.tables import device_commands, devices
from workbench.protocols import commands

pytestmark = pytest.mark.node


def _device(engine: Engine, protocol: str, config: dict[str, Any], connection: str | None = None) -> dict:  # type: ignore[type-arg]
    with engine.begin() as conn:
        row = (
            conn.execute(
                insert(devices)
                .values(
                    name=f"cmd-{uuid.uuid4().hex[:6]}",
                    type="plc",
                    protocol=protocol,
                    config=config,
                    connection_string=connection,
                )
                .returning(devices)
            )
            .mappings()
            .one()
        )
    return dict(row)


def _issue(engine: Engine, device: dict, command: str, params: dict) -> uuid.UUID:  # type: ignore[type-arg]
    protocol, planned = commands.plan(device, command, params)
    return commands.record(engine, device["id"], command, protocol, planned, None)["id"]  # type: ignore[no-any-return]


def _settled(engine: Engine, command_id: uuid.UUID) -> Any:
    def done() -> Any:
        with engine.connect() as conn:
            row = (
                conn.execute(select(device_commands).where(device_commands.c.id == command_id))
                .mappings()
                .one()
            )
        return row if row["status"] not in ("pending", "sending") else None

    return wait_until(done, timeout=20)


@pytest.fixture
def dispatcher(engine: Engine) -> Iterator[CommandDispatcher]:
    run = CommandDispatcher(engine)
    run.start()
    yield run
    run.stop()


def test_modbus_writes_reach_a_modbus_serial_server(
    engine: Engine, dispatcher: CommandDispatcher, peer: Callable[..., NodePeer]
) -> None:
    port = free_port()
    server = peer("modbus_server.js", str(port), "{}")
    server.expect(lambda line: line == "ready")
    registers = [
        {"key": "setpoint", "address": 10, "type": "float32", "writable": True},
        {"key": "speed", "address": 14, "type": "uint16", "scale": 0.1, "writable": True},
        {"key": "pump_on", "address": 3, "function": "coil", "writable": True},
    ]
    device = _device(engine, "modbus", {"registers": registers, "timeout_ms": 500}, f"tcp://127.0.0.1:{port}")
    setpoint = _settled(engine, _issue(engine, device, "write", {"key": "setpoint", "value": 12.5}))
    assert setpoint["status"] == "acknowledged", setpoint["reason"]
    assert server.expect(lambda line: isinstance(line, dict) and line.get("address") == 10) == {
        "write": "holding",
        "address": 10,
        "value": 0x4148,
    }
    assert server.expect(lambda line: isinstance(line, dict) and line.get("address") == 11)["value"] == 0
    speed = _settled(engine, _issue(engine, device, "write", {"key": "speed", "value": 150}))
    assert speed["status"] == "acknowledged"
    assert server.expect(lambda line: isinstance(line, dict) and line.get("address") == 14)["value"] == 1500
    coil = _settled(engine, _issue(engine, device, "write", {"key": "pump_on", "value": True}))
    assert coil["status"] == "acknowledged"
    assert server.expect(lambda line: isinstance(line, dict) and line.get("write") == "coil") == {
        "write": "coil",
        "address": 3,
        "value": True,
    }
    server.stop()  # the device goes away: the next write fails with the reason
    failed = _settled(engine, _issue(engine, device, "write", {"key": "speed", "value": 1}))
    assert failed["status"] == "failed" and "cannot connect" in failed["reason"]


def test_opcua_writes_reach_a_node_opcua_server(
    engine: Engine, dispatcher: CommandDispatcher, peer: Callable[..., NodePeer]
) -> None:
    port = free_port()
    server = peer("opcua_server.js", str(port), json.dumps({"Pump1.Flow": 100}))
    server.expect(lambda line: isinstance(line, str) and line.startswith("ready"), timeout=60)
    config = {
        "endpoint": f"opc.tcp://127.0.0.1:{port}/peer",
        "nodes": {"ns=1;s=Pump1.Flow": "flow"},
        "writable": ["ns=1;s=Pump1.Flow", "ns=1;s=Gone"],
        "methods": {"ns=1;s=Plant.Scale": "ns=1;s=Plant"},
    }
    device = _device(engine, "opcua", config)
    written = _settled(engine, _issue(engine, device, "write", {"key": "flow", "value": 42.5}))
    assert written["status"] == "acknowledged", written["reason"]
    assert server.expect(lambda line: isinstance(line, dict) and "write" in line) == {
        "write": "Pump1.Flow",
        "value": 42.5,
    }
    gone = _settled(engine, _issue(engine, device, "write", {"node": "ns=1;s=Gone", "value": 1}))
    assert gone["status"] == "failed" and gone["reason"] == "BadNodeIdUnknown"
    called = _settled(
        engine, _issue(engine, device, "call", {"method": "ns=1;s=Plant.Scale", "args": [21.0]})
    )
    assert called["status"] == "acknowledged" and called["result"] == {"outputs": 42.0}, called["reason"]
    assert server.expect(lambda line: isinstance(line, dict) and "call" in line) == {
        "call": "Scale",
        "args": [21.0],
    }


def test_sparkplug_dcmd_and_rebirth_reach_a_tahu_node(
    engine: Engine, pipeline: Any, mqtt_url: str, peer: Callable[..., NodePeer]
) -> None:
    host = SparkplugHost(engine, pipeline, mqtt_url, host_id=f"wb-{uuid.uuid4().hex[:6]}")
    host.start()
    run = CommandDispatcher(engine, host)
    run.start()
    try:
        wait_until(lambda: host.stats.state == "connected")
        group = f"cmd-{uuid.uuid4().hex[:6]}"
        node = peer("sparkplug_node.js", mqtt_url, group, "edge1", "boiler")
        node.expect(lambda line: isinstance(line, dict) and line.get("event") == "born")

        def born() -> Any:
            with engine.connect() as conn:
                return (
                    conn.execute(
                        select(devices).where(devices.c.connection_string == f"spBv1.0/{group}/edge1/boiler")
                    )
                    .mappings()
                    .first()
                )

        row = dict(wait_until(born))
        row["config"] = {**row["config"], "writable": ["Setpoint"]}
        write = _settled(engine, _issue(engine, row, "write", {"metric": "Setpoint", "value": 61.5}))
        assert write["status"] == "sent" and write["result"]["topic"] == f"spBv1.0/{group}/DCMD/edge1/boiler"
        dcmd = node.expect(lambda line: isinstance(line, dict) and line.get("event") == "dcmd")
        assert (dcmd["device"], dcmd["name"], dcmd["type"], dcmd["value"]) == (
            "boiler",
            "Setpoint",
            "Double",
            61.5,
        )
        rebirth = _settled(engine, _issue(engine, row, "rebirth", {}))
        assert rebirth["status"] == "sent"
        assert (
            node.expect(lambda line: isinstance(line, dict) and line.get("event") == "ncmd")["name"]
            == "Node Control/Rebirth"
        )
    finally:
        run.stop()
        host.stop()
