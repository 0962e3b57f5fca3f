"""Ingest's command dispatcher: delivers pending device commands in each device's protocol.

The devices API records commands (``workbench/protocols/commands.py``); this claims the pending ones of
Modbus, OPC-UA and Sparkplug devices and delivers them: Modbus writes (coils, holding registers, the words
the API encoded with the register's type, orders and scale) and OPC-UA writes and method calls, over their own
short connection, ``acknowledged`` when the device answers; Sparkplug DCMD/NCMD through the primary host,
``sent`` (the protocol has no answer). Failures keep their reason (an OPC-UA status code by name).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

from asyncua import ua
from pymodbus.client import AsyncModbusTcpClient
from sqlalchemy import Engine, select

from ingest.connectors.base import DeviceConfig
from ingest.connectors.modbus import modbus_address
from ingest.connectors.opcua import OpcUaConnector, plain, status_name
from ingest.connectors.sparkplug import SparkplugHost
from workbench.db.tables import devices
from workbench.protocols import commands

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
DELIVERY_TIMEOUT = 10.0


class CommandDispatcher:
    """Claims pending commands every ``POLL_SECONDS`` and delivers them, one at a time, in a thread."""

    def __init__(self, engine: Engine, sparkplug: SparkplugHost | None = None) -> None:
        self.engine = engine
        self.sparkplug = sparkplug
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def protocols(self) -> list[str]:
        """The protocols this dispatcher delivers (Sparkplug only with a host)."""
        return ["modbus", "opcua", *(["sparkplug"] if self.sparkplug is not None else [])]

    def start(self) -> None:
        """Start polling for pending commands."""
        self._thread = threading.Thread(target=self._run, name="command-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the command in hand."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(DELIVERY_TIMEOUT + 2)

    def health(self) -> dict[str, Any]:
        """Counters for ``/healthz``."""
        return {"delivered": self.delivered, "failed": self.failed, "last_error": self.last_error}

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                for row in commands.claim(self.engine, self.protocols):
                    self.deliver(row)
            except Exception as error:  # the database may be away: try again next poll
                self.last_error = str(error)
                log.warning("command dispatch failed: %s", error)

    def deliver(self, row: dict[str, Any]) -> None:
        """Deliver one claimed command and store its outcome."""
        try:
            device = self._device(row["device_id"])
            if row["protocol"] == "sparkplug":
                status, result = self._sparkplug(row["params"])
            else:
                coroutine = self._modbus(device, row["params"]) if row["protocol"] == "modbus" else None
                if coroutine is None:
                    coroutine = self._opcua(device, row["command"], row["params"])
                status, result = asyncio.run(asyncio.wait_for(coroutine, DELIVERY_TIMEOUT))
        except Exception as error:
            reason = _reason(error)
            self.failed += 1
            self.last_error = reason
            commands.finish(self.engine, row["id"], "failed", reason=reason)
            return
        self.delivered += 1
        commands.finish(self.engine, row["id"], status, result=result)

    def _device(self, device_id: uuid.UUID) -> DeviceConfig:
        with self.engine.connect() as conn:
            found = conn.execute(select(devices).where(devices.c.id == device_id)).mappings().first()
        if found is None:
            raise LookupError(f"device {device_id} no longer exists")
        return DeviceConfig(
            found["id"],
            found["name"],
            found["protocol"],
            found["connection_string"],
            dict(found["config"] or {}),
        )

    def _sparkplug(self, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        assert self.sparkplug is not None
        topic = self.sparkplug.send_command(
            params["group"],
            params["node"],
            params["device"],
            params["metric"],
            params["datatype"],
            params["value"],
        )
        return "sent", {"topic": topic}

    async def _modbus(self, device: DeviceConfig, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        host, port = modbus_address(device)
        unit = int(device.config.get("unit_id", 1))
        timeout = float(device.config.get("timeout_ms", 1000)) / 1000
        client = AsyncModbusTcpClient(host, port=port, timeout=timeout, retries=0, reconnect_delay=0)
        try:
            if not await client.connect():
                raise ConnectionError(f"cannot connect to {host}:{port}")
            address, words = int(params["address"]), list(params["words"])
            if params["function"] == "coil":
                response = await client.write_coil(address, bool(words[0]), device_id=unit)
            elif len(words) == 1:
                response = await client.write_register(address, words[0], device_id=unit)
            else:
                response = await client.write_registers(address, words, device_id=unit)
            if response.isError():
                raise ConnectionError(f"the device refused the write: {response}")
        finally:
            client.close()
        return "acknowledged", {"function_code": response.function_code, "address": address, "words": words}

    async def _opcua(
        self, device: DeviceConfig, command: str, params: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        connector = OpcUaConnector(device, _NoSink(), lambda *args: None)
        client = connector._client()  # the connector's endpoint, credentials and timeouts
        await connector._secure(client)
        await client.connect()
        try:
            if command == "call":
                target = client.get_node(params["object"])
                # A NodeId, not a string: asyncua reads a string as a browse path ("2:Name").
                method = ua.NodeId.from_string(params["method"])
                outputs = await target.call_method(method, *params["args"])
                return "acknowledged", {
                    "outputs": plain(outputs)
                    if not isinstance(outputs, list)
                    else [plain(o) for o in outputs]
                }
            node = client.get_node(params["node"])
            kind = await node.read_data_type_as_variant_type()
            await node.write_value(ua.DataValue(ua.Variant(params["value"], kind)))
            return "acknowledged", {"node": params["node"], "status": "Good"}
        finally:
            await client.disconnect()


class _NoSink:
    """The dispatcher's OPC-UA session reads nothing."""

    def submit(self, readings: list[Any], source: str) -> None:
        """Never called."""


def _reason(error: BaseException) -> str:
    """Why a delivery failed, with OPC-UA status codes by name."""
    code = getattr(error, "code", None)
    if isinstance(error, ua.UaStatusCodeError) and code is not None:
        return status_name(code)
    if isinstance(error, TimeoutError):
        return f"no answer within {DELIVERY_TIMEOUT:.0f} s"
    return str(error) or type(error).__name__
