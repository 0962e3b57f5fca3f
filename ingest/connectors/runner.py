"""Runs connector coroutines on one asyncio loop in a background thread."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

from ingest.connectors.base import DeviceConnector
from ingest.loop_thread import LoopThread

log = logging.getLogger(__name__)


class ConnectorRunner:
    """One event loop thread; each connector is a task that can be started and cancelled alone."""

    def __init__(self, name: str = "connectors") -> None:
        self.connectors: dict[uuid.UUID, DeviceConnector] = {}
        self._tasks: dict[uuid.UUID, Future[None]] = {}
        self._thread = LoopThread(name)
        self._thread.start(_nothing)
        assert self._thread.loop is not None
        self.loop = self._thread.loop

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        """Run ``coroutine`` on the loop and wait for its result."""
        return self._thread.call(coroutine, timeout)

    def start(self, connector: DeviceConnector) -> None:
        """Start ``connector.run()`` (replacing a connector already running for the same device)."""
        self.cancel(connector.device.id)
        self.connectors[connector.device.id] = connector
        self._tasks[connector.device.id] = asyncio.run_coroutine_threadsafe(self._guard(connector), self.loop)

    async def _guard(self, connector: DeviceConnector) -> None:
        try:
            await connector.run()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a connector bug must not take the others down
            log.exception("connector for %s stopped", connector.device.name)
            connector.stats.failed(error)
            connector.stats.state = "crashed"

    def cancel(self, device_id: uuid.UUID, status: str | None = None) -> None:
        """Stop the connector of ``device_id`` (and set the device's status when given)."""
        task = self._tasks.pop(device_id, None)
        connector = self.connectors.pop(device_id, None)
        if task is not None:
            task.cancel()  # thread-safe: cancels the task on the loop
        if connector is not None:
            connector.stats.state = "stopped"
            if status:
                connector.status(status)

    def close(self) -> None:
        """Cancel every connector and end the loop thread."""
        for device_id in list(self._tasks):
            self.cancel(device_id)

        try:
            self._thread.stop()  # cancels what is left, then ends the loop
        except Exception:
            log.warning("connectors did not stop within 5 s")


async def _nothing() -> None:
    """The loop needs no server: connectors start as tasks later."""
