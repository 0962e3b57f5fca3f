"""Modbus TCP connector: polls a device's register map at its interval, reconnecting with backoff."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from ingest.connectors.base import DeviceConfig, DeviceConnector, ReadingSink, StatusSetter
from ingest.connectors.modbus_codec import BIT_FUNCTIONS, FUNCTIONS, TYPES, Entry, Span, decode, plan
from ingest.connectors.registry import register
from ingest.points import Reading

log = logging.getLogger(__name__)


def modbus_address(device: DeviceConfig) -> tuple[str, int]:
    """Host and port from ``config.host``/``config.port``, else ``connection_string`` (``tcp://host:port``)."""
    config = device.config
    host, port = config.get("host"), config.get("port")
    if device.connection_string and (host is None or port is None):
        text = device.connection_string
        parts = urlsplit(text if "://" in text else f"tcp://{text}")
        host = host or parts.hostname
        port = port or parts.port
    return str(host or "127.0.0.1"), int(port or 502)


class ModbusConnector(DeviceConnector):
    """Reads holding/input registers, coils and discrete inputs of one Modbus TCP device."""

    protocol = "modbus"

    def __init__(self, device: DeviceConfig, sink: ReadingSink, set_status: StatusSetter) -> None:
        super().__init__(device, sink, set_status)
        config = device.config
        self.host, self.port = modbus_address(device)
        self.unit_id = int(config.get("unit_id", 1))
        self.interval = float(config.get("interval_ms", 1000)) / 1000
        self.timeout = float(config.get("timeout_ms", 1000)) / 1000
        self.entries = [Entry.parse(raw) for raw in config.get("registers", [])]
        self.spans = plan(self.entries, int(config.get("max_gap", 0)))
        self.backoff = self.backoff_from(config)

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """JSON Schema of a Modbus device's ``config`` (the API validates with ``workbench.protocols``)."""
        entry = {
            "type": "object",
            "required": ["key", "address"],
            "properties": {
                "key": {"type": "string"},
                "address": {"type": "integer", "minimum": 0, "maximum": 65535},
                "function": {"enum": list(FUNCTIONS)},
                "type": {"enum": list(TYPES)},
                "byte_order": {"enum": ["big", "little"]},
                "word_order": {"enum": ["big", "little"]},
                "scale": {"type": "number"},
                "offset": {"type": "number"},
                "unit": {"type": "string"},
                "length": {"type": "integer", "minimum": 1},
                "writable": {"type": "boolean"},
            },
        }
        return {
            "type": "object",
            "required": ["registers"],
            "properties": {
                "host": {"type": "string"},
                "port": {"type": "integer"},
                "unit_id": {"type": "integer", "minimum": 0, "maximum": 255},
                "interval_ms": {"type": "integer", "minimum": 10},
                "timeout_ms": {"type": "integer", "minimum": 10},
                "registers": {"type": "array", "items": entry},
            },
        }

    async def run(self) -> None:
        """Connect, poll every interval, and on any failure mark ``error`` and reconnect with backoff."""
        while True:
            client = AsyncModbusTcpClient(
                self.host, port=self.port, timeout=self.timeout, retries=0, reconnect_delay=0
            )
            try:
                if not await client.connect():
                    raise ConnectionError(f"cannot connect to {self.host}:{self.port}")
                self.backoff.reset()
                await self._poll_forever(client)
            except asyncio.CancelledError:
                raise
            except (ModbusException, OSError, TimeoutError, ConnectionError) as error:
                self.stats.failed(error)
                self.status("error")
                self.stats.reconnects += 1
                delay = self.backoff.next_delay()
                log.info("modbus %s: %s; retrying in %.1f s", self.device.name, error, delay)
                await asyncio.sleep(delay)
            finally:
                client.close()

    async def read_once(self) -> list[Reading]:
        """Connect, read the register map once and disconnect."""
        client = AsyncModbusTcpClient(
            self.host, port=self.port, timeout=self.timeout, retries=0, reconnect_delay=0
        )
        try:
            if not await client.connect():
                raise ConnectionError(f"cannot connect to {self.host}:{self.port}")
            return await self.poll(client)
        finally:
            client.close()

    async def _poll_forever(self, client: AsyncModbusTcpClient) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            readings = await self.poll(client)
            self.deliver(readings)
            self.status("online")
            next_at += self.interval
            # A slow device skips ticks instead of piling up reads.
            next_at = max(next_at, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def poll(self, client: AsyncModbusTcpClient) -> list[Reading]:
        """Read every span once; raise on timeouts and transport errors."""
        stamp = datetime.now(UTC)
        readings: list[Reading] = []
        for span in self.spans:
            words = await self._read(client, span)
            for entry in span.entries:
                at = entry.address - span.start
                value = decode(entry, words[at : at + entry.width])
                readings.append(
                    Reading(self.device.id, entry.key, value, timestamp=stamp, unit=entry.unit, quality=100)
                )
        return readings

    async def _read(self, client: AsyncModbusTcpClient, span: Span) -> list[int]:
        count, unit = span.count, self.unit_id
        if span.function == "holding":
            response = await client.read_holding_registers(span.start, count=count, device_id=unit)
        elif span.function == "input":
            response = await client.read_input_registers(span.start, count=count, device_id=unit)
        elif span.function == "discrete":
            response = await client.read_discrete_inputs(span.start, count=count, device_id=unit)
        else:
            response = await client.read_coils(span.start, count=count, device_id=unit)
        if response.isError():
            raise ModbusException(f"{span.function} {span.start}+{span.count}: {response}")
        if span.function in BIT_FUNCTIONS:
            return [int(bit) for bit in response.bits[: span.count]]
        return list(response.registers)


register(ModbusConnector)
