"""Modbus TCP connector against a real pymodbus server: types, orders, scaling, timeouts and reconnects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from ingest.connectors.base import DeviceConfig, device_status_setter
from ingest.connectors.modbus import ModbusConnector
from ingest.connectors.modbus_codec import Entry, RegisterMapError, decode, encode
from ingest.connectors.runner import ConnectorRunner
from ingest.simulator.modbus_server import ModbusServer
from tests.conftest import free_port
from tests.ingest.connectors.conftest import device_status, make_device, telemetry, wait_until

REGISTERS = [
    {"key": "pressure", "address": 0, "type": "float32", "unit": "bar"},
    {"key": "flow", "address": 2, "type": "float32", "word_order": "little", "unit": "m3/h"},
    {"key": "temperature", "address": 4, "type": "int16", "scale": 0.1, "unit": "C"},
    {"key": "counter", "address": 5, "type": "uint32", "byte_order": "little"},
    {"key": "level", "address": 10, "function": "input", "type": "uint16", "scale": 0.01, "offset": -5},
    {"key": "delta", "address": 11, "function": "input", "type": "int32"},
    {"key": "running", "address": 3, "function": "coil"},
]


@pytest.fixture
def runner() -> Iterator[ConnectorRunner]:
    run = ConnectorRunner()
    yield run
    run.close()


@pytest.fixture
def server() -> Iterator[ModbusServer]:
    srv = ModbusServer([Entry.parse(r) for r in REGISTERS], free_port())
    srv.start()
    yield srv
    srv.stop()


def _connector(engine: Engine, port: int, sink: Any, **extra: object) -> ModbusConnector:
    config = {"registers": REGISTERS, "interval_ms": 50, "timeout_ms": 300, "backoff_initial_ms": 50, **extra}
    device_id = make_device(engine, "modbus", config, f"tcp://127.0.0.1:{port}")
    device = DeviceConfig(device_id, "plc", "modbus", f"tcp://127.0.0.1:{port}", config)
    return ModbusConnector(device, sink, device_status_setter(engine))


def test_codec_round_trips_every_type_and_order() -> None:
    for kind in ("int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64"):
        for byte_order in ("big", "little"):
            for word_order in ("big", "little"):
                entry = Entry("k", 0, type=kind, byte_order=byte_order, word_order=word_order, scale=0.5)
                value = 1234.5 if kind.startswith("u") else -1234.5
                assert decode(entry, encode(entry, value)) == pytest.approx(value, rel=1e-6)
    # Word order as a device documents it: 0x4148 0x0000 is 12.5 big-endian words, swapped when "little".
    assert decode(Entry("k", 0, type="float32"), [0x4148, 0x0000]) == 12.5
    assert decode(Entry("k", 0, type="float32", word_order="little"), [0x0000, 0x4148]) == 12.5
    assert decode(Entry("k", 0, type="int16", byte_order="little"), [0xFFFE]) == -257
    with pytest.raises(RegisterMapError, match="type: Must be one of"):
        Entry.parse({"key": "x", "address": 1, "type": "float128"})
    # 64-bit values in the four word orders a device may document (ABCD, CDAB, BADC, DCBA).
    pi = [0x4009, 0x21FB, 0x5444, 0x2D18]
    assert decode(Entry("k", 0, type="float64"), pi) == pytest.approx(3.141592653589793)
    assert decode(Entry("k", 0, type="float64", word_order="little"), pi[::-1]) == pytest.approx(
        3.14159265358979
    )
    swapped = [int.from_bytes(w.to_bytes(2, "big"), "little") for w in pi]
    assert decode(Entry("k", 0, type="float64", byte_order="little"), swapped) == pytest.approx(
        3.14159265358979
    )
    assert decode(Entry("k", 0, type="uint64"), [0xFFFF] * 4) == float(2**64 - 1)
    assert decode(Entry("k", 0, type="int64"), [0xFFFF] * 4) == -1.0
    text = Entry("k", 0, type="string", length=4)
    assert encode(text, "PUMP-7") == [0x5055, 0x4D50, 0x2D37, 0]
    assert decode(text, encode(text, "PUMP-7")) == "PUMP-7"
    assert decode(Entry("k", 0, type="string", length=2, byte_order="little"), [0x5550, 0x504D]) == "PUMP"
    with pytest.raises(RegisterMapError, match="longer than 8 bytes"):
        encode(text, "much too long")
    with pytest.raises(RegisterMapError, match="does not fit int16"):
        encode(Entry("k", 0, type="int16"), 40000)


def test_polls_64_bit_values_strings_and_discrete_inputs(engine, pipeline, runner) -> None:
    registers = [
        {"key": "energy", "address": 0, "type": "float64", "word_order": "little", "unit": "kWh"},
        {"key": "hours", "address": 4, "type": "uint64"},
        {"key": "serial", "address": 20, "function": "input", "type": "string", "length": 5},
        {"key": "door_open", "address": 7, "function": "discrete"},
    ]
    srv = ModbusServer([Entry.parse(r) for r in registers], free_port())
    srv.start()
    try:
        for key, value in {
            "energy": 123456.789,
            "hours": 2**40 + 5,
            "serial": "SN-4711",
            "door_open": 1,
        }.items():
            srv.set(key, value)  # type: ignore[arg-type]
        config = {"registers": registers, "interval_ms": 50, "timeout_ms": 300}
        device_id = make_device(engine, "modbus", config, f"tcp://127.0.0.1:{srv.port}")
        device = DeviceConfig(device_id, "meter", "modbus", f"tcp://127.0.0.1:{srv.port}", config)
        runner.start(ModbusConnector(device, pipeline, device_status_setter(engine)))
        rows = wait_until(lambda: len(telemetry(engine, device_id)) >= 4 and telemetry(engine, device_id))
        got = {r.key: r for r in rows[:4]}
        assert got["energy"].value == pytest.approx(123456.789) and got["energy"].unit == "kWh"
        assert got["hours"].value == float(2**40 + 5)
        assert got["serial"].value is None and got["serial"].text_value == "SN-4711"
        assert got["door_open"].value == 1.0
    finally:
        srv.stop()


def test_polls_the_register_map_with_types_orders_and_scaling(engine, pipeline, server, runner) -> None:
    values = {"pressure": 4.25, "flow": 118.5, "temperature": -12.3, "counter": 70000, "level": 37.5}
    for key, value in {**values, "delta": -42, "running": 1}.items():
        server.set(key, value)
    connector = _connector(engine, server.port, pipeline)
    runner.start(connector)
    rows = wait_until(
        lambda: len(telemetry(engine, connector.device.id)) >= 14 and telemetry(engine, connector.device.id)
    )
    got = {r.key: r for r in rows[:7]}
    for key, value in values.items():
        assert got[key].value == pytest.approx(value, abs=1e-3), key
    assert got["delta"].value == -42 and got["running"].value == 1.0
    assert got["pressure"].unit == "bar" and got["pressure"].quality == 100
    assert {r.device_id for r in got.values()} == {connector.device.id}
    assert len(connector.spans) == 3  # one read each: holding 0..6, input 10..12, the coil
    wait_until(lambda: device_status(engine, connector.device.id) == "online")


def test_timeouts_set_error_and_recovery_sets_online(engine, pipeline, server, runner) -> None:
    connector = _connector(engine, server.port, pipeline)
    runner.start(connector)
    wait_until(lambda: device_status(engine, connector.device.id) == "online")
    server.delay = 1.0  # longer than the 300 ms timeout
    wait_until(lambda: device_status(engine, connector.device.id) == "error", timeout=5)
    assert connector.stats.errors >= 1 and connector.stats.reconnects >= 1
    server.delay = 0.0
    before = len(telemetry(engine, connector.device.id))
    wait_until(lambda: device_status(engine, connector.device.id) == "online", timeout=8)
    wait_until(lambda: len(telemetry(engine, connector.device.id)) > before)


def test_reconnects_with_backoff_after_the_server_restarts(engine, pipeline, runner) -> None:
    port = free_port()
    entries = [Entry.parse(r) for r in REGISTERS]
    first = ModbusServer(entries, port)
    first.start()
    first.set("pressure", 1.0)
    connector = _connector(engine, port, pipeline)
    runner.start(connector)
    wait_until(
        lambda: any(r.key == "pressure" and r.value == 1.0 for r in telemetry(engine, connector.device.id))
    )
    first.stop()
    wait_until(lambda: device_status(engine, connector.device.id) == "error", timeout=5)
    second = ModbusServer(entries, port)
    second.start()
    second.set("pressure", 2.0)
    try:
        wait_until(
            lambda: any(
                r.key == "pressure" and r.value == 2.0 for r in telemetry(engine, connector.device.id)
            ),
            timeout=10,
        )
        assert connector.stats.reconnects >= 1
        wait_until(lambda: device_status(engine, connector.device.id) == "online")
    finally:
        second.stop()
