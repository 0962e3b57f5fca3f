"""The ingest pipeline: validate readings, quarantine the bad ones, queue the good ones for the writer."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine

from ingest.directory import DeviceDirectory
from ingest.points import Reading
from ingest.validation import Bounds, Row, Validated, Validator, canonical_device
from ingest.writer import BatchWriter, QuarantineRow, WorkItem
from workbench.live.bus import EventBus
from workbench.settings import Settings

MAX_QUARANTINE_PAYLOAD = 1_000_000

# Ingest allocates a few short-lived tuples per point. With CPython's default threshold (700 allocations)
# the cyclic collector ran over a thousand times per second at 100k points/s and took about half of
# ingest's CPU (measured: 5.4 -> 2.8 us CPU per point). Young collections every 50,000 allocations stay
# short; reference counting still frees everything acyclic at once, so memory does not grow.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Raise the cyclic collector's thresholds for this process (never lowers them)."""
    current = gc.get_threshold()
    if current[0] and current[0] < GC_THRESHOLDS[0]:
        gc.set_threshold(*GC_THRESHOLDS)


class Backpressure(RuntimeError):
    """The write queue stayed full for the whole timeout (the database is down or too slow)."""


@dataclass
class SubmitResult:
    """What happened to one submit: points queued, and (index, reason) for each reading quarantined."""

    accepted: int
    rejected: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class MessageReject:
    """A whole message that could not be decoded: kept raw in quarantine with its reason."""

    reason: str
    payload: bytes
    topic: str | None = None
    device_id: str | None = None


class Pipeline:
    """``submit`` validates, quarantines, and queues; ``on_committed`` runs once everything is committed."""

    def __init__(
        self, settings: Settings, engine: Engine, bus: EventBus, directory: DeviceDirectory | None = None
    ) -> None:
        assert settings.database_url, "the pipeline needs a database URL"
        self.settings = settings
        self.directory = directory or DeviceDirectory(engine, settings.ingest_auto_register)
        self.validator = Validator(
            self.directory,
            Bounds(
                max_age=timedelta(days=settings.ingest_max_age_days),
                max_future=timedelta(seconds=settings.ingest_max_future_s),
                max_abs_value=settings.ingest_max_abs_value,
            ),
        )
        self.writer = BatchWriter(
            settings.database_url,
            bus,
            batch_size=settings.ingest_batch_size,
            flush_ms=settings.ingest_flush_ms,
            max_queue_points=settings.ingest_queue_points,
            lanes=settings.ingest_writers,
        )
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Load the device directory and start the writer."""
        with self._lock:
            if self._started:
                return
            tune_gc()
            self.directory.load()
            self.writer.start()
            self._started = True

    def stop(self) -> None:
        """Flush and stop the writer."""
        with self._lock:
            if self._started:
                self.writer.stop()
                self._started = False

    def submit(
        self,
        readings: list[Reading],
        source: str,
        on_committed: Callable[[], None] | None = None,
        *,
        rejects: list[MessageReject] | None = None,
        statuses: list[tuple[str, str]] | None = None,
        timeout: float | None = None,
        rows: list[Row] | None = None,
    ) -> SubmitResult:
        """Validate ``readings`` from ``source``; good ones go to the writer, bad ones to quarantine.

        ``on_committed`` runs in the writer thread after the points, the quarantined readings and the
        status changes of this call are committed. Blocks while the write queue is full (backpressure);
        raises Backpressure when ``timeout`` passes first. ``rows`` are points already validated (the
        MQTT fast path); they are written with the others.
        """
        result: Validated = self.validator.validate(readings) if readings else Validated()
        if rows:
            result.rows[:0] = rows
        quarantine: list[QuarantineRow] = []
        for index, reason in result.rejected:
            reading = readings[index]
            device = _device_text(reading.device_id)
            quarantine.append((source, None, device, _clean(reason), reading_document(reading)))
        for reject in rejects or ():
            payload = reject.payload[:MAX_QUARANTINE_PAYLOAD]
            topic = None if reject.topic is None else _clean(reject.topic)
            device = None if reject.device_id is None else _clean(reject.device_id)
            quarantine.append((source, topic, device, _clean(reject.reason), payload))
        item = WorkItem(source, result.rows, quarantine, list(statuses or ()), on_committed)
        if not self.writer.put(item, timeout):
            raise Backpressure("ingest queue full: the database is not keeping up")
        return SubmitResult(len(result.rows), result.rejected)

    def health(self) -> dict[str, Any]:
        """Health details; raises while the database refuses batches."""
        writer = self.writer
        details = {
            "queued_points": writer.queued_points,
            "committed_points": writer.committed_points,
            "devices_known": len(self.directory),
        }
        if writer.down_since is not None:
            raise ConnectionError(f"batch writes failing: {writer.last_error}")
        return details


def reading_document(reading: Reading) -> bytes:
    """A rejected reading as a JSON document that POST /api/v1/telemetry accepts (for replay)."""
    document: dict[str, Any] = {
        "device_id": reading.device_id,
        "key": reading.key,
        "value": reading.value,
        "timestamp": reading.timestamp,
        "unit": reading.unit,
        "quality": reading.quality,
    }
    if reading.metadata:
        document["metadata"] = reading.metadata
    try:
        return orjson.dumps(document, default=str, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return repr(document).encode("utf-8", "replace")[:MAX_QUARANTINE_PAYLOAD]


def _device_text(device_id: Any) -> str | None:
    try:
        return canonical_device(device_id)
    except ValueError:
        return None if device_id is None else _clean(str(device_id)[:100])


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; quarantine must store whatever arrived.
    return text.replace("\x00", "\\x00")


def received_now() -> datetime:
    """The receipt time used when a reading has no timestamp."""
    return datetime.now(UTC)
