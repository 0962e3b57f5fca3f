"""A Modbus TCP server (pymodbus) whose registers follow values the simulator sets by key."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from ingest.connectors.modbus_codec import Entry, encode
from ingest.loop_thread import LoopThread

SIZE = 1024  # registers (and coils) per table served


class ModbusServer:
    """Serves a register map on ``host:port`` in a background thread; ``set(key, value)`` updates it."""

    def __init__(self, entries: list[Entry], port: int, host: str = "127.0.0.1", unit_id: int = 1) -> None:
        self.entries = {entry.key: entry for entry in entries}
        self.host, self.port, self.unit_id = host, port, unit_id
        self.image: dict[str, list[int]] = {
            "holding": [0] * SIZE,
            "input": [0] * SIZE,
            "coil": [0] * SIZE,
            "discrete": [0] * SIZE,
        }
        # Seconds to wait before answering: a slow or hung device, to exercise client timeouts.
        self.delay = 0.0
        self.requests = 0
        self._lock = threading.Lock()
        self._server: ModbusTcpServer | None = None
        self._loop_thread = LoopThread(f"modbus-server-{port}")

    def set(self, key: str, value: float) -> None:
        """Store ``value`` for the map entry ``key`` (encoded with its type, orders, scale and offset)."""
        entry = self.entries[key]
        words = encode(entry, value)
        with self._lock:
            self.image[entry.function][entry.address : entry.address + len(words)] = words

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: Any,
    ) -> None:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            if function_code in (1, 2):
                table = self.image["coil" if function_code == 1 else "discrete"]
                bits = [bool(b) for b in table[start_address : start_address + len(current_registers) * 16]]
                bits += [False] * (len(current_registers) * 16 - len(bits))
                current_registers[:] = SimUtils.bitsToRegisters(bits)[: len(current_registers)]
            elif function_code in (3, 4):
                table = self.image["holding" if function_code == 3 else "input"]
                for i in range(len(current_registers)):
                    if 0 <= start_address + i < SIZE:
                        current_registers[i] = table[start_address + i]

    def _device(self) -> SimDevice:
        bits = SimData(0, values=[False] * SIZE, datatype=DataType.BITS)
        words = SimData(0, count=SIZE, values=0, datatype=DataType.REGISTERS)
        words_in = SimData(0, count=SIZE, values=0, datatype=DataType.REGISTERS)
        discrete = SimData(0, values=[False] * SIZE, datatype=DataType.BITS)
        return SimDevice(id=0, simdata=([bits], [discrete], [words], [words_in]), action=self._action)

    async def _boot(self) -> None:
        # pymodbus binds the server to the running loop, so it is built inside it.
        self._server = ModbusTcpServer(self._device(), address=(self.host, self.port))
        await self._server.serve_forever(background=True)

    def start(self) -> None:
        """Start serving; returns once the port accepts connections."""
        self._loop_thread.start(self._boot)
        from ingest.broker import wait_for_port

        wait_for_port(self.host, self.port)

    def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._server is None:
            return
        self._loop_thread.stop(self._server.shutdown())
        self._server = None
