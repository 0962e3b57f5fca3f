"""What every connector shares: the sink it feeds, backoff, device status and health counters."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Engine, func, update

from ingest.points import Reading
from workbench.db.tables import devices
from workbench.metrics import CONNECTOR_ERRORS, CONNECTOR_READINGS


class ReadingSink(Protocol):
    """Where connectors hand raw readings: the ingest pipeline validates and writes them."""

    def submit(self, readings: list[Reading], source: str) -> object:
        """Accept ``readings`` delivered by the protocol named ``source``."""


@dataclass
class CollectingSink:
    """A sink that keeps what it receives (for tools and unit tests that stop before the database)."""

    readings: list[Reading] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, readings: list[Reading], source: str) -> None:
        """Keep ``readings`` in arrival order."""
        with self._lock:
            self.readings.extend(readings)
            self.sources.extend([source] * len(readings))

    def snapshot(self) -> list[Reading]:
        """A copy of every reading received so far."""
        with self._lock:
            return list(self.readings)


@dataclass
class Backoff:
    """Exponential backoff with full jitter: ``initial``, doubling up to ``maximum`` seconds."""

    initial: float = 0.5
    maximum: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (and count the attempt)."""
        ceiling = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        # Jitter keeps a fleet of devices from reconnecting in lockstep after an outage.
        return ceiling / 2 + random.random() * ceiling / 2

    def reset(self) -> None:
        """Back to the initial delay after a success."""
        self.attempt = 0


@dataclass
class ConnectorStats:
    """Counters one connector exposes on ``/healthz``."""

    protocol: str = ""
    state: str = "starting"
    readings: int = 0
    errors: int = 0
    reconnects: int = 0
    last_error: str | None = None
    last_reading_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The counters as JSON-ready values."""
        last = None
        if self.last_reading_at is not None:
            last = datetime.fromtimestamp(self.last_reading_at, UTC).isoformat()
        return {
            "state": self.state,
            "readings": self.readings,
            "errors": self.errors,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "last_reading_at": last,
        }

    def delivered(self, count: int) -> None:
        """Record ``count`` readings handed to the sink."""
        self.readings += count
        CONNECTOR_READINGS.labels(self.protocol).inc(count)
        self.last_reading_at = time.time()
        self.state = "connected"

    def failed(self, error: BaseException | str) -> None:
        """Record an error (the connector will retry)."""
        self.errors += 1
        CONNECTOR_ERRORS.labels(self.protocol).inc()
        self.last_error = str(error) or type(error).__name__ if isinstance(error, BaseException) else error
        self.state = "error"


StatusSetter = Callable[..., None]  # (device_id, status, detail=None)


def device_status_setter(engine: Engine) -> StatusSetter:
    """A function that stores a device's status (``online``, ``degraded``, ``offline``, ``error``) and why."""

    def set_status(device_id: uuid.UUID, status: str, detail: str | None = None) -> None:
        with engine.begin() as conn:
            conn.execute(
                update(devices)
                .where(
                    devices.c.id == device_id,
                    (devices.c.status != status) | devices.c.status_detail.is_distinct_from(detail),
                )
                .values(status=status, status_detail=detail)
            )

    return set_status


def touch(engine: Engine, device_id: uuid.UUID) -> None:
    """Mark a device's row as changed (``updated_at = now()``) so config watchers reload it."""
    with engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.id == device_id).values(updated_at=func.now()))


@dataclass(frozen=True)
class DeviceConfig:
    """A device row as a connector sees it: identity, how to connect, what to read."""

    id: uuid.UUID
    name: str
    protocol: str
    connection_string: str | None
    config: dict[str, Any]
    updated_at: datetime | None = None


class DeviceConnector:
    """A connector for one device: ``run`` reads until cancelled; ``health`` reports counters.

    Subclasses set ``protocol``, describe their config in ``configuration_schema`` and implement ``run``.
    """

    protocol: str = ""

    def __init__(self, device: DeviceConfig, sink: ReadingSink, set_status: StatusSetter) -> None:
        self.device = device
        self.sink = sink
        self._set_status = set_status
        self.stats = ConnectorStats(protocol=self.protocol)
        self._status: tuple[str, str | None] | None = None

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """JSON Schema of ``devices.config`` for this protocol."""
        return {"type": "object"}

    async def run(self) -> None:
        """Connect, read and deliver until cancelled, reconnecting with backoff."""
        raise NotImplementedError

    async def read_once(self) -> list[Reading]:
        """Connect, read every configured value once and disconnect; raise on any failure (a probe)."""
        raise NotImplementedError(f"{self.protocol} connector cannot read once")

    def health(self) -> dict[str, Any]:
        """This connector's counters for ``/healthz``."""
        return {"device": self.device.name, "protocol": self.protocol, **self.stats.as_dict()}

    def backoff_from(self, config: dict[str, Any]) -> Backoff:
        """Reconnect backoff from ``backoff_initial_ms`` (default 500) and ``backoff_max_ms`` (30000)."""
        return Backoff(
            initial=float(config.get("backoff_initial_ms", 500)) / 1000,
            maximum=float(config.get("backoff_max_ms", 30_000)) / 1000,
        )

    def status(self, status: str, detail: str | None = None) -> None:
        """Store the device's status and why, when either changes (``online``, ``degraded``, ``error``)."""
        if (status, detail) == self._status:
            return
        try:
            if detail is None:
                self._set_status(self.device.id, status)
            else:
                self._set_status(self.device.id, status, detail)
            self._status = (status, detail)
        except Exception as error:  # the database may be down; the next change retries
            self.stats.failed(f"status update failed: {error}")

    def deliver(self, readings: list[Reading]) -> None:
        """Hand readings to the sink and count them."""
        if readings:
            self.sink.submit(readings, self.protocol)
            self.stats.delivered(len(readings))
