"""Commands to devices in their own protocol: checked against the device's config, recorded, tracked.

A command is a row of ``device_commands``: ``pending`` until delivered, then ``sent`` (published, the protocol
gives no answer: MQTT JSON, Sparkplug DCMD/NCMD), ``acknowledged`` (the device answered the write or the call:
Modbus, OPC-UA) or ``failed`` with the reason. MQTT devices get the JSON command here at once; Modbus, OPC-UA
and Sparkplug commands are delivered by ingest's command dispatcher (``ingest/commands.py``), which claims
pending rows. Writes reach only what the device's config declares writable.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, text, update

from workbench.db.tables import device_commands
from workbench.protocols.modbus import Entry, RegisterMapError, encode
from workbench.protocols.opcua import NODE_ID

# Delivered by ingest (the connector side); anything else is an MQTT device and gets JSON.
DISPATCHED = ("modbus", "opcua", "sparkplug")
STATUSES = ("pending", "sending", "sent", "acknowledged", "failed")
REBIRTH_METRIC = "Node Control/Rebirth"


class CommandError(ValueError):
    """A command the device cannot take; ``field`` names the part of the request at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def plan(device: dict[str, Any], command: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The protocol and delivery plan of ``command`` for a devices row; CommandError when refused."""
    protocol = device.get("protocol") or "mqtt"
    config = device.get("config") or {}
    if protocol == "modbus":
        return protocol, _modbus(config, command, params)
    if protocol == "opcua":
        return protocol, _opcua(config, command, params)
    if protocol == "sparkplug":
        return protocol, _sparkplug(device.get("connection_string") or "", config, command, params)
    return "mqtt", dict(params)


def _value(params: dict[str, Any]) -> Any:
    if "value" not in params:
        raise CommandError("params.value", "a write needs a value")
    return params["value"]


def _modbus(config: dict[str, Any], command: str, params: dict[str, Any]) -> dict[str, Any]:
    if command != "write":
        raise CommandError("command", "a Modbus device takes 'write' ({key, value})")
    key = params.get("key")
    raw = next(
        (r for r in config.get("registers") or [] if isinstance(r, dict) and r.get("key") == key), None
    )
    if raw is None:
        raise CommandError("params.key", f"no register {key!r} in the device's map")
    try:
        entry = Entry.parse(raw)
        value = _value(params)
        if entry.type != "string" and not isinstance(value, bool | int | float):
            raise CommandError("params.value", "a number (or true/false) is needed")
        words = encode(entry, value)
    except RegisterMapError as error:
        raise CommandError("params.value", str(error)) from None
    if not entry.writable:
        raise CommandError("params.key", f"register {key!r} is not declared writable")
    return {"key": key, "value": value, "function": entry.function, "address": entry.address, "words": words}


def _opcua(config: dict[str, Any], command: str, params: dict[str, Any]) -> dict[str, Any]:
    if command == "write":
        node = params.get("node")
        if node is None and "key" in params:  # by telemetry key: the node the map reads it from
            node = next((n for n, k in (config.get("nodes") or {}).items() if k == params["key"]), None)
        if not isinstance(node, str) or not NODE_ID.match(node):
            raise CommandError("params.node", "name the node (NodeId) or a key of the node map")
        if node not in (config.get("writable") or []):
            raise CommandError("params.node", f"node {node} is not declared writable (config.writable)")
        return {"node": node, "value": _value(params)}
    if command == "call":
        method = params.get("method")
        methods = config.get("methods") or {}
        if method not in methods:
            raise CommandError("params.method", f"method {method!r} is not declared (config.methods)")
        args = params.get("args", [])
        if not isinstance(args, list):
            raise CommandError("params.args", "a list of input arguments")
        return {"method": method, "object": methods[method], "args": args}
    raise CommandError(
        "command", "an OPC-UA device takes 'write' ({node or key, value}) or 'call' ({method, args})"
    )


def _sparkplug(path: str, config: dict[str, Any], command: str, params: dict[str, Any]) -> dict[str, Any]:
    parts = path.split("/")
    if len(parts) not in (3, 4) or parts[0] != "spBv1.0":
        raise CommandError("device", f"not a Sparkplug path: {path!r}")
    group, node = parts[1], parts[2]
    device = parts[3] if len(parts) == 4 else None
    if command == "rebirth":
        return {
            "group": group,
            "node": node,
            "device": None,
            "metric": REBIRTH_METRIC,
            "datatype": 11,
            "value": True,
        }
    if command != "write":
        raise CommandError("command", "a Sparkplug device takes 'write' ({metric, value}) or 'rebirth'")
    metric = params.get("metric")
    catalogue = (config.get("sparkplug") or {}).get("metrics") or {}
    if metric not in (config.get("writable") or []):
        raise CommandError("params.metric", f"metric {metric!r} is not declared writable (config.writable)")
    if metric not in catalogue:
        raise CommandError("params.metric", f"metric {metric!r} was never born (no datatype known)")
    return {
        "group": group,
        "node": node,
        "device": device,
        "metric": metric,
        "datatype": int(catalogue[metric].get("datatype") or 0),
        "value": _value(params),
    }


def issue(
    platform: Any, device: dict[str, Any], command: str, params: dict[str, Any], issued_by: uuid.UUID | None
) -> dict[str, Any]:
    """Check, record and (for MQTT devices) publish a command; the API and the device page both call this.

    Raises CommandError for a command the device cannot take, ConnectionError when an MQTT device's command
    cannot be published (no broker).
    """
    protocol, planned = plan(device, command, params)
    if protocol in DISPATCHED:
        return record(platform.engine, device["id"], command, protocol, planned, issued_by)
    topic = f"insa/devices/{device['id']}/command"
    payload = {
        "id": uuid.uuid4().hex,
        "timestamp": datetime.now(UTC).isoformat(),
        "device_id": str(device["id"]),
        "issued_by": str(issued_by) if issued_by else None,
        "command": command,
        "params": params,
    }
    mqtt = platform.mqtt
    if mqtt is None or not mqtt.connected:
        raise ConnectionError("no MQTT broker connected: commands cannot be sent")
    try:
        mqtt.publish(topic, payload, qos=1, retain=False)
    except (RuntimeError, ValueError) as error:
        raise ConnectionError(f"MQTT publish failed: {error}") from None
    result = {"topic": topic, "payload": payload}
    return record(platform.engine, device["id"], command, protocol, planned, issued_by, "sent", result)


def record(
    engine: Engine,
    device_id: uuid.UUID,
    command: str,
    protocol: str,
    params: dict[str, Any],
    issued_by: uuid.UUID | None,
    status: str = "pending",
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store a command; returns its row."""
    with engine.begin() as conn:
        row = (
            conn.execute(
                insert(device_commands)
                .values(
                    device_id=device_id,
                    command=command,
                    protocol=protocol,
                    params=params,
                    issued_by=issued_by,
                    status=status,
                    result=result,
                )
                .returning(device_commands)
            )
            .mappings()
            .one()
        )
    return dict(row)


def finish(
    engine: Engine, command_id: uuid.UUID, status: str, reason: str | None = None, result: Any = None
) -> None:
    """Set a command's outcome (``sent``, ``acknowledged`` or ``failed`` with the reason)."""
    with engine.begin() as conn:
        conn.execute(
            update(device_commands)
            .where(device_commands.c.id == command_id)
            .values(status=status, reason=reason, result=result, updated_at=datetime.now(UTC))
        )


CLAIM = text(
    """
    UPDATE device_commands SET status = 'sending', updated_at = now()
    WHERE id IN (
        SELECT id FROM device_commands WHERE status = 'pending' AND protocol = ANY(:protocols)
        ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    RETURNING id, device_id, command, protocol, params
    """
)


def claim(engine: Engine, protocols: list[str], limit: int = 20) -> list[dict[str, Any]]:
    """Pending commands of ``protocols``, now ``sending`` (one claimer each, across processes)."""
    with engine.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(CLAIM, {"protocols": protocols, "limit": limit})]


def recent(
    engine: Engine, device_id: uuid.UUID, limit: int = 50, status: str | None = None
) -> list[dict[str, Any]]:
    """A device's commands (those in ``status`` when given), newest first."""
    query = select(device_commands).where(device_commands.c.device_id == device_id)
    if status is not None:
        query = query.where(device_commands.c.status == status)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(device_commands.c.created_at.desc()).limit(limit)).mappings()
        return [dict(r) for r in rows]
