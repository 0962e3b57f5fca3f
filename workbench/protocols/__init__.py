"""Protocol device configs: what the devices API accepts for each protocol a connector serves."""

from __future__ import annotations

import copy as copy_module
from typing import Any

import marshmallow as ma

from workbench.protocols.modbus import ModbusConfigSchema
from workbench.protocols.opcua import OpcUaConfigSchema
from workbench.secrets import DEVICE_CONFIG

# Protocol name → schema of ``devices.config``; a connector plugin registers its own through ``register``.
CONFIG_SCHEMAS: dict[str, type[ma.Schema]] = {"modbus": ModbusConfigSchema, "opcua": OpcUaConfigSchema}


def register(protocol: str, schema: type[ma.Schema]) -> None:
    """Validate configs of devices speaking ``protocol`` with ``schema``."""
    CONFIG_SCHEMAS[protocol] = schema


def config_errors(protocol: str | None, config: Any) -> dict[str, Any]:
    """Field errors of ``config`` for a ``protocol`` device (empty when valid, absent or unchecked)."""
    schema = CONFIG_SCHEMAS.get(protocol or "")
    if schema is None or config is None:
        return {}
    if not isinstance(config, dict):
        return {"_schema": [f"a {protocol} device needs a config object"]}
    return dict(schema().validate(_secrets_as_text(config)))


def _secrets_as_text(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as it will be stored: sealed or kept (`{"set": true}`) secrets as text, nulled ones gone."""
    copy = copy_module.deepcopy(config)
    for path in DEVICE_CONFIG:
        holder: Any = copy
        for step in path[:-1]:
            holder = holder.get(step) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and isinstance(holder.get(path[-1]), dict):
            holder[path[-1]] = "secret"
        elif isinstance(holder, dict) and path[-1] in holder and holder[path[-1]] is None:
            del holder[path[-1]]  # null removes a stored secret
    return copy


def text_keys(protocol: str | None, config: Any) -> set[str]:
    """Keys whose values are text by the protocol config (Modbus string registers)."""
    if protocol == "modbus" and isinstance(config, dict):
        return {
            str(r.get("key"))
            for r in config.get("registers") or []
            if isinstance(r, dict)
            and r.get("type") == "string"
            and r.get("function", "holding") in ("holding", "input")
        }
    return set()
