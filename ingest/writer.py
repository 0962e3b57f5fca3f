"""The batch writer: one thread, binary COPY, latest values, device status, then acks and bus events."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from ingest import events
from ingest.copy_binary import COPY_ORDER, CopyEncoder
from ingest.validation import Row
from workbench.db.engine import libpq_url
from workbench.live.bus import EventBus
from workbench.metrics import BATCH_SIZE, POINTS_ACCEPTED, POINTS_REJECTED, QUEUE_DEPTH, WRITE_LATENCY

log = logging.getLogger(__name__)

COPY_TELEMETRY = f"COPY telemetry ({', '.join(COPY_ORDER)}) FROM STDIN (FORMAT BINARY)"
COPY_QUARANTINE = "COPY quarantine (source, topic, device_id, reason, payload) FROM STDIN (FORMAT BINARY)"
QUARANTINE_TYPES = ("varchar", "text", "varchar", "text", "bytea")
# The newest value per series goes through a per-connection staging table filled by binary COPY (arrays
# of parameters cost more to build in Python than the whole telemetry COPY).
CREATE_LATEST_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS latest_stage (device_id uuid, key varchar, unit varchar,
    timestamp timestamptz, value float8, quality int4, metadata bytea, text_value text) ON COMMIT DELETE ROWS
"""
COPY_LATEST_STAGE = f"COPY latest_stage ({', '.join(COPY_ORDER)}) FROM STDIN (FORMAT BINARY)"
UPSERT_LATEST = """
INSERT INTO latest_values (device_id, key, timestamp, value, unit, quality, text_value)
SELECT u.device_id, u.key, u.timestamp, u.value, u.unit, u.quality, u.text_value FROM latest_stage u
JOIN devices d ON d.id = u.device_id
ORDER BY u.device_id, u.key
ON CONFLICT (device_id, key) DO UPDATE SET timestamp = EXCLUDED.timestamp, value = EXCLUDED.value,
    unit = EXCLUDED.unit, quality = EXCLUDED.quality, text_value = EXCLUDED.text_value
WHERE latest_values.timestamp <= EXCLUDED.timestamp
"""
# Joining the old row gives the status before the update, so only real changes become events.
# Data means online, except for a connector's "degraded" (some of its points flow, some fail): that stays.
TOUCH_DEVICES = """
UPDATE devices d
SET last_seen = now(), status = CASE WHEN d.status = 'degraded' THEN d.status ELSE 'online' END
FROM devices old WHERE old.id = d.id AND d.id = ANY(%s::uuid[])
RETURNING d.id, old.status, d.status
"""
SET_STATUS = """
UPDATE devices d SET status = %s, last_seen = CASE WHEN %s = 'online' THEN now() ELSE d.last_seen END
FROM devices old WHERE old.id = d.id AND d.id = %s::uuid
RETURNING d.id, old.status
"""
# last_seen is written at most this often per device: offline detection works in minutes, not ms.
TOUCH_EVERY = 1.0
# Under load the newest value per series is upserted at most this often (with the batch then in hand):
# each upsert rewrites a row per series, which cost a fifth of the telemetry COPY when done every batch.
# A series seen for the first time, or a batch that empties the queue, upserts at once, so an idle
# platform's latest values are as current as its telemetry.
LATEST_EVERY = 0.5
# Series whose latest value this writer has upserted; beyond this many the set starts again.
MAX_KNOWN_SERIES = 200_000
# At start, series whose newest telemetry is newer than their latest value (an upsert held back when the
# last process died) take it from telemetry: one index probe per series.
REPAIR_LATEST = """
UPDATE latest_values lv SET timestamp = n.timestamp, value = n.value, unit = n.unit, quality = n.quality,
    text_value = n.text_value
FROM latest_values o CROSS JOIN LATERAL (
    SELECT t.timestamp, t.value, t.unit, t.quality, t.text_value FROM telemetry t
    WHERE t.device_id = o.device_id AND t.key = o.key ORDER BY t.timestamp DESC LIMIT 1) n
WHERE lv.device_id = o.device_id AND lv.key = o.key AND n.timestamp > o.timestamp
"""

QuarantineRow = tuple[str, str | None, str | None, str, bytes]
# Committed batches at most waiting for the bus; beyond, the writer waits (backpressure).
MAX_PENDING_EVENTS = 32


class _Abandon(Exception):
    """Stopping while the database is down: leave the batch unacknowledged (the broker keeps it)."""


@dataclass
class WorkItem:
    """What one submit hands to the writer; ``on_committed`` runs after the transaction commits."""

    source: str
    rows: list[Row]
    quarantine: list[QuarantineRow] = field(default_factory=list)
    statuses: list[tuple[str, str]] = field(default_factory=list)
    on_committed: Callable[[], None] | None = None


@dataclass
class _Committed:
    """A committed batch on its way to the bus: rows by source, status changes, commit time."""

    rows: dict[str, list[Row]]
    changes: list[tuple[str, str]]
    at: datetime


class BatchWriter:
    """Collects work items and commits them in batches (by size or time); retries while the DB is down."""

    def __init__(
        self,
        database_url: str,
        bus: EventBus,
        batch_size: int = 5000,
        flush_ms: int = 250,
        max_queue_points: int = 200_000,
    ) -> None:
        self.url = libpq_url(database_url)
        self.bus = bus
        self.batch_size = batch_size
        self.flush_seconds = flush_ms / 1000
        self.max_queue_points = max_queue_points
        self._queue: deque[WorkItem] = deque()
        self._queued_points = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._staged: psycopg.Connection | None = None  # the connection that has the staging table
        self._encoder = CopyEncoder()
        self._touched: dict[str, float] = {}
        # Committed rows not yet in latest_values: the newest per (device, key).
        self._latest: dict[tuple[str, str], Row] = {}
        self._latest_at = 0.0
        self._known: set[tuple[str, str]] = set()
        self._repaired = False
        self.committed_points = 0
        self.last_error: str | None = None
        self.down_since: float | None = None
        # Committed batches waiting to be published on the bus (by the events thread, in commit order).
        self._events: deque[_Committed] = deque()
        self._events_cond = threading.Condition()
        self._events_done = False
        self._events_thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread and the thread that publishes committed batches."""
        self._events_thread = threading.Thread(target=self._publish_loop, name="ingest-events", daemon=True)
        self._events_thread.start()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is queued (while the database answers), publish what is committed, and stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._events_cond:
            self._events_done = True
            self._events_cond.notify_all()
        if self._events_thread is not None:
            self._events_thread.join(timeout)
        if self._conn is not None:
            self._conn.close()

    def put(self, item: WorkItem, timeout: float | None = None) -> bool:
        """Queue ``item``; blocks while the queue is full (backpressure). False on timeout."""
        size = len(item.rows) + len(item.quarantine)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queued_points + size > self.max_queue_points and self._queued_points > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            self._queue.append(item)
            self._queued_points += size
            QUEUE_DEPTH.set(self._queued_points)
            self._cond.notify_all()
        return True

    @property
    def queued_points(self) -> int:
        """Points and quarantine rows waiting to be committed."""
        return self._queued_points

    def _take(self) -> list[WorkItem] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None if not self._latest else []
                if self._latest and time.monotonic() - self._latest_at >= LATEST_EVERY:
                    return []  # a write of no rows: the held-back latest values
                self._cond.wait(LATEST_EVERY if self._latest else 0.5)
            # Adaptive batching: take what is queued; under load the queue grows while we write.
            deadline = time.monotonic() + self.flush_seconds
            batch: list[WorkItem] = []
            points = 0
            while points < self.batch_size:
                if not self._queue:
                    break
                item = self._queue.popleft()
                batch.append(item)
                points += len(item.rows) + len(item.quarantine)
                if time.monotonic() > deadline:
                    break
            return batch

    def _release(self, batch: list[WorkItem]) -> None:
        with self._cond:
            self._queued_points -= sum(len(i.rows) + len(i.quarantine) for i in batch)
            QUEUE_DEPTH.set(self._queued_points)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            parts = [batch]
            while parts:
                part = parts.pop(0)
                try:
                    changes = self._write_retrying(part)
                except _Abandon:
                    return
                except Exception as error:
                    # The server (or a dumper) refused the data itself: halve until the item at fault is
                    # alone (log2(n) rounds; the others commit normally), then quarantine its points.
                    log.warning("batch refused (%s); isolating the item at fault", error)
                    self._reset()
                    if not part:  # only held-back latest values: their rows are committed already
                        log.error("latest values not updated for %d series: %s", len(self._latest), error)
                        self._latest = {}
                        continue
                    if len(part) > 1:
                        half = len(part) // 2
                        parts[:0] = [part[:half], part[half:]]
                        continue
                    self._release(part)
                    replacement = self._quarantined(part[0], error)
                    self._after_commit([replacement], self._try_refused(replacement))
                    continue
                self._release(part)
                self._after_commit(part, changes)

    def _write_retrying(self, part: list[WorkItem]) -> list[tuple[str, str]]:
        delay = 0.1
        while True:
            try:
                changes = self._write(part)
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                self._fail(error)
                if self._stopping and self.down_since and time.monotonic() - self.down_since > 5:
                    log.error("stopping with %d uncommitted items (not acknowledged)", len(part))
                    raise _Abandon from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self.down_since is not None:
                log.warning("database back after %.1f s", time.monotonic() - self.down_since)
            self.down_since = None
            self.last_error = None
            return changes

    def _quarantined(self, item: WorkItem, error: Exception) -> WorkItem:
        first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else repr(error)
        reason = f"database refused the batch: {first_line}"
        refused: list[QuarantineRow] = [
            (item.source, None, row[8], reason, repr(row[:8]).encode()[:10000]) for row in item.rows
        ]
        refused += [(src, None, device, reason, payload) for src, _, device, _, payload in item.quarantine]
        return WorkItem(item.source, [], refused, [], item.on_committed)

    def _try_refused(self, replacement: WorkItem) -> list[tuple[str, str]]:
        try:
            return self._write_retrying([replacement])
        except _Abandon:
            raise
        except Exception as again:
            # Even the quarantine rows were refused: log them rather than stall all ingest behind them.
            self._reset()
            log.error("dropping %d rows the database refused twice: %s", len(replacement.quarantine), again)
            return []

    def _reset(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _fail(self, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.error("batch write failed, retrying (nothing acknowledged): %s", error)
        self.last_error = str(error).strip().splitlines()[0] if str(error) else type(error).__name__
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, connect_timeout=5)
        return self._conn

    def _write(self, batch: list[WorkItem]) -> list[tuple[str, str]]:
        started = time.perf_counter()
        conn = self._connection()
        if not self._repaired:
            with conn.transaction():
                conn.execute(REPAIR_LATEST)
            self._repaired = True
        rows = [row for item in batch for row in item.rows]
        touched: set[str] = set()
        now = time.monotonic()
        staged = True
        latest = self._newest(rows)
        due = bool(latest) and (
            now - self._latest_at >= LATEST_EVERY
            or not self._queue
            or self._stopping
            or not self._known.issuperset(latest)
        )
        with conn.transaction(), conn.cursor() as cur:
            if rows:
                with cur.copy(COPY_TELEMETRY) as copy:
                    copy.write(self._encoder.encode(rows))
            if any(item.quarantine for item in batch):
                with cur.copy(COPY_QUARANTINE) as copy:
                    copy.set_types(QUARANTINE_TYPES)
                    for item in batch:
                        for qrow in item.quarantine:
                            copy.write_row(qrow)
            if due:
                staged = self._staged is conn
                if not staged:
                    cur.execute(CREATE_LATEST_STAGE)
                with cur.copy(COPY_LATEST_STAGE) as copy:
                    copy.write(self._encoder.encode(latest.values()))
                cur.execute(UPSERT_LATEST)
            for device in {row[8] for row in rows}:
                if now - self._touched.get(device, 0.0) >= TOUCH_EVERY:
                    touched.add(device)
            changes: list[tuple[str, str]] = []
            if touched:
                for device_id, old, new in cur.execute(TOUCH_DEVICES, [sorted(touched)]).fetchall():
                    if old != new:
                        changes.append((str(device_id), new))
                for device in touched:
                    self._touched[device] = now
            for item in batch:
                for device, status in item.statuses:
                    for device_id, old in cur.execute(SET_STATUS, [status, status, device]).fetchall():
                        if old != status:
                            changes.append((str(device_id), status))
                    self._touched.pop(device, None)
        if not staged:  # committed: the staging table exists on this connection from now on
            self._staged = conn
        if due:
            if len(self._known) > MAX_KNOWN_SERIES:
                self._known.clear()
            self._known.update(latest)
            self._latest = {}
            self._latest_at = now
        else:
            self._latest = latest
        WRITE_LATENCY.observe(time.perf_counter() - started)
        return changes

    def _newest(self, rows: list[Row]) -> dict[tuple[str, str], Row]:
        """The held-back latest rows merged with ``rows``: the newest per series (ties: the later row)."""
        latest = dict(self._latest)
        for row in rows:
            series = (row[8], row[2])
            held = latest.get(series)
            if held is None or held[0] <= row[0]:
                latest[series] = row
        return latest

    def _after_commit(self, batch: list[WorkItem], changes: list[tuple[str, str]]) -> None:
        by_source: dict[str, list[Row]] = {}
        for item in batch:
            if item.rows:
                by_source.setdefault(item.source, []).extend(item.rows)
                POINTS_ACCEPTED.labels(item.source).inc(len(item.rows))
            if item.quarantine:
                POINTS_REJECTED.labels(item.source).inc(len(item.quarantine))
        points = sum(len(rows) for rows in by_source.values())
        self.committed_points += points
        if points:
            BATCH_SIZE.observe(points)
        for item in batch:
            if item.on_committed is not None:
                try:
                    item.on_committed()
                except Exception:
                    log.exception("on_committed callback failed")
        if not by_source and not changes:
            return
        # Building the event frames and running the bus subscribers happen on the events thread, so the
        # writer starts the next COPY at once; bounded, so slow subscribers hold back the writer.
        committed = _Committed(by_source, changes, datetime.now(UTC))
        with self._events_cond:
            while len(self._events) >= MAX_PENDING_EVENTS and not self._events_done:
                self._events_cond.wait(0.1)
            self._events.append(committed)
            self._events_cond.notify_all()

    def _publish_loop(self) -> None:
        while True:
            with self._events_cond:
                while not self._events:
                    if self._events_done:
                        return
                    self._events_cond.wait(0.5)
                committed = self._events.popleft()
                self._events_cond.notify_all()
            try:
                for source, rows in committed.rows.items():
                    events.publish_batch(self.bus, rows, source, committed.at)
                for device_id, status in committed.changes:
                    events.publish_status(self.bus, device_id, status, committed.at)
            except Exception:  # a failing subscriber must not stop the events of later batches
                log.exception("publishing a committed batch failed")

