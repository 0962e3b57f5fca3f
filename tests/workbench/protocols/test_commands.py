"""Command plans: each protocol's command checked against the device's config (writable only), encoded."""

from __future__ import annotations

import pytest

from workbench.protocols.commands import REBIRTH_METRIC, CommandError, plan

MODBUS = {
    "protocol": "modbus",
    "config": {
        "registers": [
            {"key": "setpoint", "address": 10, "type": "float32", "word_order": "little", "writable": True},
            {"key": "speed", "address": 12, "type": "uint16", "scale": 0.1, "writable": True},
            {"key": "pump_on", "address": 3, "function": "coil", "writable": True},
            {"key": "pressure", "address": 0, "type": "float32"},
        ]
    },
}


def _refused(device: dict, command: str, params: dict) -> str:  # type: ignore[type-arg]
    with pytest.raises(CommandError) as caught:
        plan(device, command, params)
    return caught.value.field


def test_modbus_writes_are_encoded_with_the_register_type_and_scale() -> None:
    assert plan(MODBUS, "write", {"key": "setpoint", "value": 12.5})[1]["words"] == [0x0000, 0x4148]
    speed = plan(MODBUS, "write", {"key": "speed", "value": 150.0})[1]
    assert (speed["function"], speed["address"], speed["words"]) == ("holding", 12, [1500])
    assert plan(MODBUS, "write", {"key": "pump_on", "value": True})[1]["words"] == [1]
    assert _refused(MODBUS, "write", {"key": "pressure", "value": 1}) == "params.key"  # not writable
    assert _refused(MODBUS, "write", {"key": "nope", "value": 1}) == "params.key"
    assert _refused(MODBUS, "write", {"key": "speed", "value": 10_000}) == "params.value"  # beyond uint16
    assert _refused(MODBUS, "write", {"key": "speed", "value": "fast"}) == "params.value"
    assert _refused(MODBUS, "reboot", {}) == "command"


def test_opcua_writes_and_calls_only_what_is_declared() -> None:
    device = {
        "protocol": "opcua",
        "config": {
            "nodes": {"ns=2;s=Flow": "flow", "ns=2;s=Pressure": "pressure"},
            "writable": ["ns=2;s=Flow"],
            "methods": {"ns=2;s=Reset": "ns=2;s=Pump"},
        },
    }
    assert plan(device, "write", {"key": "flow", "value": 3})[1] == {"node": "ns=2;s=Flow", "value": 3}
    assert _refused(device, "write", {"key": "pressure", "value": 3}) == "params.node"
    assert plan(device, "call", {"method": "ns=2;s=Reset", "args": [1]})[1]["object"] == "ns=2;s=Pump"
    assert _refused(device, "call", {"method": "ns=2;s=Explode"}) == "params.method"


def test_sparkplug_writes_typed_metrics_and_rebirths() -> None:
    device = {
        "protocol": "sparkplug",
        "connection_string": "spBv1.0/plant/edge1/boiler",
        "config": {
            "writable": ["Setpoint"],
            "sparkplug": {"metrics": {"Setpoint": {"datatype": 10}, "Temp": {}}},
        },
    }
    write = plan(device, "write", {"metric": "Setpoint", "value": 55})[1]
    assert (write["device"], write["metric"], write["datatype"]) == ("boiler", "Setpoint", 10)
    assert _refused(device, "write", {"metric": "Temp", "value": 1}) == "params.metric"
    rebirth = plan(device, "rebirth", {})[1]
    assert (rebirth["device"], rebirth["metric"], rebirth["value"]) == (None, REBIRTH_METRIC, True)


def test_other_devices_take_any_command_as_json() -> None:
    assert plan({"protocol": None}, "restart", {"delay": 1}) == ("mqtt", {"delay": 1})
