"""The Modbus connector against modbus-serial's TCP server (Node), another implementation."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from ingest.connectors.base import DeviceConfig, device_status_setter
from ingest.connectors.modbus import ModbusConnector
from ingest.connectors.runner import ConnectorRunner
from tests.conftest import free_port
from tests.ingest.connectors.conftest import device_status, make_device, telemetry, wait_until
from tests.node_peers import NodePeer

pytestmark = pytest.mark.node

REGISTERS = [
    {"key": "energy", "address": 0, "type": "float64", "word_order": "little", "unit": "kWh"},
    {"key": "runtime", "address": 4, "type": "uint64", "byte_order": "little"},
    {"key": "tag", "address": 10, "function": "input", "type": "string", "length": 3},
    {"key": "door", "address": 2, "function": "discrete"},
    {"key": "pump_on", "address": 5, "function": "coil"},
    {"key": "temp", "address": 20, "type": "int16", "scale": 0.1, "unit": "C"},
]


def _words(fmt: str, value: float) -> list[int]:
    data = struct.pack(">" + fmt, value)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


@pytest.fixture
def runner() -> Iterator[ConnectorRunner]:
    run = ConnectorRunner()
    yield run
    run.close()


def test_reads_every_type_from_a_modbus_serial_server(
    engine: Engine, pipeline: object, runner: ConnectorRunner, peer: Callable[..., NodePeer]
) -> None:
    energy = list(reversed(_words("d", 98765.4321)))  # word order little: last word first
    runtime = [int.from_bytes(w.to_bytes(2, "big"), "little") for w in _words("Q", 3_000_000_007)]
    holding = {i: w for i, w in enumerate(energy)} | {4 + i: w for i, w in enumerate(runtime)}
    holding[20] = (-153) & 0xFFFF
    tables = {
        "holding": holding,
        "input": {10: 0x4142, 11: 0x432D, 12: 0x3900},  # "ABC-9" and a NUL
        "discrete": {2: 1},
        "coil": {5: 1},
    }
    port = free_port()
    server = peer("modbus_server.js", str(port), json.dumps(tables))
    server.expect(lambda line: line == "ready")
    config = {"registers": REGISTERS, "interval_ms": 100, "timeout_ms": 500}
    device_id = make_device(engine, "modbus", config, f"tcp://127.0.0.1:{port}")
    device = DeviceConfig(device_id, "meter", "modbus", f"tcp://127.0.0.1:{port}", config)
    runner.start(ModbusConnector(device, pipeline, device_status_setter(engine)))  # type: ignore[arg-type]
    rows = wait_until(lambda: len(telemetry(engine, device_id)) >= 6 and telemetry(engine, device_id))
    got = {r.key: r for r in rows[:6]}
    assert got["energy"].value == pytest.approx(98765.4321) and got["energy"].unit == "kWh"
    assert got["runtime"].value == 3_000_000_007
    assert got["tag"].text_value == "ABC-9"
    assert got["door"].value == 1.0 and got["pump_on"].value == 1.0
    assert got["temp"].value == pytest.approx(-15.3) and got["temp"].unit == "C"
    assert device_status(engine, device_id) == "online"
