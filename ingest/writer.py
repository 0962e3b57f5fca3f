"""The batch writer: binary COPY on a few connections, latest values, device status, then acks and events.

Several writer threads ("lanes", each with its own connection) take batches from one queue, so one batch
is copied while another commits and the database works on both. Whatever order they commit in, the
work after each commit (acks, callbacks, bus events) runs in the order the batches were taken: MQTT
wants acknowledgements in the order the messages arrived, and subscribers see batches in that order.
"""

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
from ingest.latest import CREATE_STAGE, REPAIR, UPSERT, LatestValues, Series, newest
from ingest.validation import Row
from workbench.db.engine import libpq_url
from workbench.live.bus import EventBus
from workbench.metrics import BATCH_SIZE, POINTS_ACCEPTED, POINTS_REJECTED, QUEUE_DEPTH, WRITE_LATENCY

log = logging.getLogger(__name__)

COPY_TELEMETRY = f"COPY telemetry ({', '.join(COPY_ORDER)}) FROM STDIN (FORMAT BINARY)"
COPY_QUARANTINE = "COPY quarantine (source, topic, device_id, reason, payload) FROM STDIN (FORMAT BINARY)"
QUARANTINE_TYPES = ("varchar", "text", "varchar", "text", "bytea")
COPY_LATEST_STAGE = f"COPY latest_stage ({', '.join(COPY_ORDER)}) FROM STDIN (FORMAT BINARY)"
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

QuarantineRow = tuple[str, str | None, str | None, str, bytes]
# Committed batches at most waiting for the bus; beyond, the writer waits (backpressure).
MAX_PENDING_EVENTS = 32
Changes = list[tuple[str, str]]


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
    changes: Changes
    at: datetime


@dataclass
class _Lane:
    """One writer thread's connection and per-connection state."""

    name: str
    conn: psycopg.Connection | None = None
    staged: psycopg.Connection | None = None  # the connection that has the latest-values staging table
    encoder: CopyEncoder = field(default_factory=CopyEncoder)


class BatchWriter:
    """Collects work items and commits them in batches (by size or time); retries while the DB is down."""

    def __init__(
        self,
        database_url: str,
        bus: EventBus,
        batch_size: int = 5000,
        flush_ms: int = 250,
        max_queue_points: int = 200_000,
        lanes: int = 2,
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
        self._lanes = [_Lane(f"ingest-writer-{n}") for n in range(max(1, lanes))]
        self._threads: list[threading.Thread] = []
        self._latest = LatestValues()
        self._repaired = threading.Lock()
        self._repair_done = False
        self._touched: dict[str, float] = {}
        self.committed_points = 0
        self.last_error: str | None = None
        self.down_since: float | None = None
        # Batches are numbered as they are taken; their after-commit work runs in that order.
        self._taken = 0
        self._next_done = 0
        self._done: dict[int, list[tuple[list[WorkItem], Changes]]] = {}
        self._done_lock = threading.Lock()
        # Committed batches waiting to be published on the bus (by the events thread, in commit order).
        self._events: deque[_Committed] = deque()
        self._events_cond = threading.Condition()
        self._events_done = False
        self._events_thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer threads and the thread that publishes committed batches."""
        self._events_thread = threading.Thread(target=self._publish_loop, name="ingest-events", daemon=True)
        self._events_thread.start()
        for lane in self._lanes:
            thread = threading.Thread(target=self._run, args=(lane,), name=lane.name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is queued (while the database answers), publish what is committed, and stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._events_cond:
            self._events_done = True
            self._events_cond.notify_all()
        if self._events_thread is not None:
            self._events_thread.join(timeout)
        for lane in self._lanes:
            if lane.conn is not None:
                lane.conn.close()

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

    def _take(self) -> tuple[int, list[WorkItem]] | None:
        """The next batch and its number; an empty batch writes held-back latest values; None: stop."""
        with self._cond:
            while not self._queue:
                if self._latest.overdue or (self._stopping and self._latest.held):
                    break
                if self._stopping:
                    return None
                self._cond.wait(0.1 if self._latest.held else 0.5)
            # Adaptive batching: take what is queued; under load the queue grows while we write.
            deadline = time.monotonic() + self.flush_seconds
            batch: list[WorkItem] = []
            points = 0
            while points < self.batch_size and self._queue:
                item = self._queue.popleft()
                batch.append(item)
                points += len(item.rows) + len(item.quarantine)
                if time.monotonic() > deadline:
                    break
            number = self._taken
            self._taken += 1
            return number, batch

    def _release(self, batch: list[WorkItem]) -> None:
        with self._cond:
            self._queued_points -= sum(len(i.rows) + len(i.quarantine) for i in batch)
            QUEUE_DEPTH.set(self._queued_points)
            self._cond.notify_all()

    def _run(self, lane: _Lane) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            number, batch = taken
            done: list[tuple[list[WorkItem], Changes]] = []
            parts = [batch]
            try:
                while parts:
                    part = parts.pop(0)
                    try:
                        changes = self._write_retrying(lane, part)
                    except _Abandon:
                        raise
                    except Exception as error:
                        # The server (or a dumper) refused the data itself: halve until the item at fault
                        # is alone (log2(n) rounds; the others commit normally), then quarantine its points.
                        log.warning("batch refused (%s); isolating the item at fault", error)
                        self._reset(lane)
                        if not part:  # only held-back latest values, whose rows are committed already
                            log.error("latest values not updated: %s", error)
                            continue
                        if len(part) > 1:
                            half = len(part) // 2
                            parts[:0] = [part[:half], part[half:]]
                            continue
                        self._release(part)
                        replacement = self._quarantined(part[0], error)
                        done.append(([replacement], self._try_refused(lane, replacement)))
                        continue
                    self._release(part)
                    done.append((part, changes))
            except _Abandon:
                self._finish(number, done)  # later batches may still be acknowledged
                return
            self._finish(number, done)

    def _finish(self, number: int, done: list[tuple[list[WorkItem], Changes]]) -> None:
        """Run the after-commit work of batch ``number`` and of every later one ready, in order."""
        with self._done_lock:
            self._done[number] = done
            while self._next_done in self._done:
                for part, changes in self._done.pop(self._next_done):
                    self._after_commit(part, changes)
                self._next_done += 1

    def _write_retrying(self, lane: _Lane, part: list[WorkItem]) -> Changes:
        delay = 0.1
        while True:
            try:
                changes = self._write(lane, part)
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                self._fail(lane, error)
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

    def _try_refused(self, lane: _Lane, replacement: WorkItem) -> Changes:
        try:
            return self._write_retrying(lane, [replacement])
        except _Abandon:
            raise
        except Exception as again:
            # Even the quarantine rows were refused: log them rather than stall all ingest behind them.
            self._reset(lane)
            log.error("dropping %d rows the database refused twice: %s", len(replacement.quarantine), again)
            return []

    def _reset(self, lane: _Lane) -> None:
        if lane.conn is not None:
            with contextlib.suppress(Exception):
                lane.conn.close()
            lane.conn = None

    def _fail(self, lane: _Lane, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.error("batch write failed, retrying (nothing acknowledged): %s", error)
        self.last_error = str(error).strip().splitlines()[0] if str(error) else type(error).__name__
        self._reset(lane)

    def _connection(self, lane: _Lane) -> psycopg.Connection:
        if lane.conn is None or lane.conn.closed:
            lane.conn = psycopg.connect(self.url, connect_timeout=5)
        if not self._repair_done:
            with self._repaired:  # once per process, before the first batch (see ingest.latest.REPAIR)
                if not self._repair_done:
                    with lane.conn.transaction():
                        lane.conn.execute(REPAIR)
                    self._repair_done = True
        return lane.conn

    def _write(self, lane: _Lane, batch: list[WorkItem]) -> Changes:
        started = time.perf_counter()
        conn = self._connection(lane)
        rows = [row for item in batch for row in item.rows]
        mine = newest(rows)
        claim = self._latest.claim(mine, urgent=not self._queue or self._stopping)
        try:
            changes = self._transaction(lane, conn, batch, rows, None if claim is None else claim.rows)
        except BaseException:
            if claim is not None:
                self._latest.settle(claim, committed=False)
            raise
        if claim is not None:
            self._latest.settle(claim, committed=True)
        else:
            self._latest.hold(mine)
        WRITE_LATENCY.observe(time.perf_counter() - started)
        return changes

    def _transaction(
        self,
        lane: _Lane,
        conn: psycopg.Connection,
        batch: list[WorkItem],
        rows: list[Row],
        latest: dict[Series, Row] | None,
    ) -> Changes:
        touched: set[str] = set()
        now = time.monotonic()
        staged = True
        changes: Changes = []
        with conn.transaction(), conn.cursor() as cur:
            if rows:
                with cur.copy(COPY_TELEMETRY) as copy:
                    copy.write(lane.encoder.encode(rows))
            if any(item.quarantine for item in batch):
                with cur.copy(COPY_QUARANTINE) as copy:
                    copy.set_types(QUARANTINE_TYPES)
                    for item in batch:
                        for qrow in item.quarantine:
                            copy.write_row(qrow)
            if latest:
                staged = lane.staged is conn
                if not staged:
                    cur.execute(CREATE_STAGE)
                with cur.copy(COPY_LATEST_STAGE) as copy:
                    copy.write(lane.encoder.encode(latest.values()))
                cur.execute(UPSERT)
            for device in {row[8] for row in rows}:
                if now - self._touched.get(device, 0.0) >= TOUCH_EVERY:
                    touched.add(device)
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
            lane.staged = conn
        return changes

    def _after_commit(self, batch: list[WorkItem], changes: Changes) -> None:
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
