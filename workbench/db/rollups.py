"""Minute and hour rollups of telemetry, so long-range charts and aggregates never scan raw rows.

A :class:`RollupMaintainer` listens to committed batches on the bus and every ``flush_seconds`` folds
them into per-bucket partial aggregates (vectorised) and upserts those: a few thousand rows per flush
however fast points arrive. Partials whose upsert fails because the database is unreachable are kept and
retried first at the next flush, so an outage delays the rollups but never leaves them short. A crash
loses at most the unflushed partials: at start the maintainer rebuilds the newest buckets from raw rows,
and ``rebuild`` recomputes any range (used after bulk loads that bypass the bus).
"""

from __future__ import annotations

import logging
import struct
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Table, func, select, text

from workbench.db.copy_format import HEADER, PG_EPOCH_US, TRAILER
from workbench.db.engine import unreachable
from workbench.db.tables import telemetry_1h, telemetry_1m
from workbench.live.bus import TELEMETRY_BATCH, EventBus
from workbench.live.events import TelemetryBatch
from workbench.periodic import Periodic

log = logging.getLogger(__name__)

PARTIAL_COLUMNS = (
    "count",
    "sum",
    "sumsq",
    "min",
    "max",
    "min_at",
    "max_at",
    "first",
    "first_at",
    "last",
    "last_at",
)


_TYPES = {
    "device_id": "uuid",
    "key": "text",
    "bucket": "timestamptz",
    **{name: "timestamptz" if name.endswith("_at") else "float8" for name in PARTIAL_COLUMNS},
    "count": "bigint",
}


@dataclass(frozen=True)
class Resolution:
    """One rollup table and its bucket width."""

    table: Table
    step: timedelta

    @property
    def freq(self) -> str:
        """The pandas frequency string of the bucket width."""
        return f"{int(self.step.total_seconds())}s"


RESOLUTIONS = (Resolution(telemetry_1m, timedelta(minutes=1)), Resolution(telemetry_1h, timedelta(hours=1)))

# PostgreSQL raises on float8 overflow (and on a product's underflow) where numpy gives inf (and 0), so
# one stored 1e200 made every rebuild fail. Sums of values beyond BIG, and sums that may leave the
# double range, are taken in exact numeric (float8's text form is its shortest exact decimal) and
# brought back with a clamp: beyond the largest double is +-Infinity, below half the smallest subnormal 0.
BIG = "1e100"
_MAX = "1.7976931348623157e308"


def _to_float8(numeric: str) -> str:
    return (
        f"(CASE WHEN {numeric} > {_MAX} THEN 'Infinity'::float8 WHEN {numeric} < -{_MAX} "
        f"THEN '-Infinity'::float8 WHEN abs({numeric}) <= 2.4703282292062328e-324 THEN 0::float8 "
        f"ELSE CAST({numeric} AS float8) END)"
    )


def _safe_sum(small_term: str, big_term: str) -> str:
    """sum() of a term: float8 over rows with |value| < BIG, exact numeric over the others."""
    small = f"sum({small_term}) FILTER (WHERE abs(value) < {BIG})"
    big = f"sum({big_term}) FILTER (WHERE abs(value) >= {BIG})"
    combined = _to_float8(f"(coalesce(CAST(CAST({small} AS text) AS numeric), 0) + {big})")
    return f"(CASE WHEN {big} IS NULL THEN {small} ELSE {combined} END)"


def _safe_add(left: str, right: str) -> str:
    """left + right on float8 without the overflow error (an infinite or NaN side adds as float8)."""
    exact = _to_float8(f"(CAST(CAST({left} AS text) AS numeric) + CAST(CAST({right} AS text) AS numeric))")
    return (
        f"(CASE WHEN abs({left}) <= 8e307 AND abs({right}) <= 8e307 THEN {left} + {right} "
        f"WHEN NOT ({left} < 'Infinity' AND {left} > '-Infinity' AND {right} < 'Infinity' "
        f"AND {right} > '-Infinity') THEN {left} + {right} ELSE {exact} END)"
    )


_NUMERIC_VALUE = "CAST(CAST(value AS text) AS numeric)"
_REBUILD_SUM = _safe_sum("value", _NUMERIC_VALUE)
# Squares below 1e-300 count as 0 (PostgreSQL raises on the underflow; numpy gives 0 too).
_REBUILD_SUMSQ = _safe_sum(
    "CASE WHEN abs(value) < 1e-150 THEN 0 ELSE value * value END", f"{_NUMERIC_VALUE} * {_NUMERIC_VALUE}"
)


def partials(frame: pd.DataFrame, resolutions: tuple[Resolution, ...]) -> list[pd.DataFrame]:
    """Per (device_id, key, bucket) partial aggregates of numeric points, a frame per resolution.

    One stable sort by (series, time) and numpy reductions over the runs it makes (a pandas groupby per
    aggregate cost ingest a third of its CPU); a bucket is monotone in time, so the same order serves
    every width. Rows come out ordered by device, key and bucket, so concurrent upserts lock rollup
    rows in the same order.
    """
    values = frame["value"].to_numpy(dtype="float64")
    keep = ~np.isnan(values)
    if not keep.any():
        empty = pd.DataFrame(columns=["device_id", "key", "bucket", *PARTIAL_COLUMNS])
        return [empty for _ in resolutions]
    values = values[keep]
    stamps = frame["timestamp"].to_numpy(dtype="datetime64[ns]").view("int64")[keep]
    device_codes, devices = pd.factorize(frame["device_id"].to_numpy()[keep], sort=True)
    key_codes, keys = pd.factorize(frame["key"].to_numpy()[keep], sort=True)
    series = device_codes.astype("int64") * len(keys) + key_codes
    order = np.lexsort((stamps, series))
    series, stamps, values = series[order], stamps[order], values[order]
    same_series = series[1:] == series[:-1]
    return [
        _reduce(series, stamps, values, same_series, devices, keys, resolution) for resolution in resolutions
    ]


def _reduce(
    series: np.ndarray,
    stamps: np.ndarray,
    values: np.ndarray,
    same_series: np.ndarray,
    devices: np.ndarray,
    keys: np.ndarray,
    resolution: Resolution,
) -> pd.DataFrame:
    step = int(resolution.step.total_seconds()) * 1_000_000_000
    buckets = np.floor_divide(stamps, step)
    size = len(values)
    change = np.ones(size, dtype=bool)
    change[1:] = ~same_series | (buckets[1:] != buckets[:-1])
    starts = np.flatnonzero(change)
    lasts = np.append(starts[1:], size) - 1
    group = np.cumsum(change) - 1
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # beyond the double range: inf, as SQL
        mins = np.minimum.reduceat(values, starts)
        maxs = np.maximum.reduceat(values, starts)
        sums = np.add.reduceat(values, starts)
        sumsqs = np.add.reduceat(values * values, starts)
    firsts = series[starts]
    return pd.DataFrame(
        {
            "device_id": pd.Series(devices[firsts // len(keys)], dtype=object),
            "key": pd.Series(keys[firsts % len(keys)], dtype=object),
            "bucket": _utc(buckets[starts] * step),
            "count": lasts - starts + 1,
            "sum": sums,
            "sumsq": sumsqs,
            "min": mins,
            "max": maxs,
            "min_at": _utc(stamps[_first_where(values == mins[group], group)]),
            "max_at": _utc(stamps[_first_where(values == maxs[group], group)]),
            "first": values[starts],
            "first_at": _utc(stamps[starts]),
            "last": values[lasts],
            "last_at": _utc(stamps[lasts]),
        }
    )


def _first_where(mask: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Index of the first true element of each group (groups are consecutive; each has one)."""
    hits = np.flatnonzero(mask)
    hit_groups = group[hits]
    first = np.ones(len(hits), dtype=bool)
    first[1:] = hit_groups[1:] != hit_groups[:-1]
    return hits[first]


def _utc(nanoseconds: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(nanoseconds.astype("datetime64[ns]")).tz_localize("UTC")


# Partials reach the rollup tables through a per-connection staging table filled by binary COPY: binding
# them as arrays of parameters dumped each value in Python and cost more than computing them.
_STAGE_COLUMNS = ", ".join(f"{name} {kind}" for name, kind in _TYPES.items())
CREATE_STAGE = f"CREATE TEMP TABLE IF NOT EXISTS rollup_stage ({_STAGE_COLUMNS}) ON COMMIT DELETE ROWS"
COPY_STAGE = f"COPY rollup_stage ({', '.join(_TYPES)}) FROM STDIN (FORMAT BINARY)"


def _is_time(name: str) -> bool:
    return name == "bucket" or name.endswith("_at")


def _fixed_kind(name: str) -> str:
    return ">i8" if name == "count" or _is_time(name) else ">f8"


# After the device id and key of a row: bucket, then the partial columns, each a length and a value.
_FIXED = np.dtype(
    [
        field
        for name in ("bucket", *PARTIAL_COLUMNS)
        for field in ((f"{name}_length", ">i4"), (name, _fixed_kind(name)))
    ]
)


def _pg_micros(column: pd.Series) -> np.ndarray:
    """Microseconds since PostgreSQL's epoch (2000-01-01 UTC) of a datetime column."""
    nanoseconds = pd.to_datetime(column, utc=True).to_numpy(dtype="datetime64[ns]").view("int64")
    return nanoseconds // 1000 - PG_EPOCH_US


def copy_rows(frame: pd.DataFrame) -> bytes:
    """The binary COPY stream of partials for ``rollup_stage`` (numeric fields packed by numpy)."""
    fixed = np.zeros(len(frame), dtype=_FIXED)
    for name in ("bucket", *PARTIAL_COLUMNS):
        fixed[f"{name}_length"] = 8
        fixed[name] = _pg_micros(frame[name]) if _is_time(name) else frame[name].to_numpy()
    packed = fixed.tobytes()
    width = _FIXED.itemsize
    parts = [HEADER]
    for index, (device, key) in enumerate(zip(frame["device_id"], frame["key"], strict=True)):
        encoded = key.encode()
        parts.append(_PREFIX.pack(len(_TYPES), 16, uuid.UUID(str(device)).bytes, len(encoded)))
        parts.append(encoded)
        parts.append(packed[index * width : (index + 1) * width])
    parts.append(TRAILER)
    return b"".join(parts)


_PREFIX = struct.Struct(">hi16si")  # field count, uuid length, uuid, key length


def upsert(engine: Engine, resolution: Resolution, frame: pd.DataFrame) -> None:
    """Fold partials into the rollup table (adding to buckets that already hold data)."""
    if frame.empty:
        return
    name = resolution.table.name
    statement = (
        f"INSERT INTO {name} AS r (device_id, key, bucket, {', '.join(PARTIAL_COLUMNS)}) "
        f"SELECT {', '.join(_TYPES)} FROM rollup_stage ORDER BY device_id, key, bucket "
        "ON CONFLICT (device_id, key, bucket) DO UPDATE SET "
        f"count = r.count + excluded.count, sum = {_safe_add('r.sum', 'excluded.sum')}, "
        f"sumsq = {_safe_add('r.sumsq', 'excluded.sumsq')}, "
        "min_at = CASE WHEN excluded.min < r.min THEN excluded.min_at ELSE r.min_at END, "
        "min = least(r.min, excluded.min), "
        "max_at = CASE WHEN excluded.max > r.max THEN excluded.max_at ELSE r.max_at END, "
        "max = greatest(r.max, excluded.max), "
        "first = CASE WHEN excluded.first_at < r.first_at THEN excluded.first ELSE r.first END, "
        "first_at = least(r.first_at, excluded.first_at), "
        "last = CASE WHEN excluded.last_at >= r.last_at THEN excluded.last ELSE r.last END, "
        "last_at = greatest(r.last_at, excluded.last_at)"
    )
    data = copy_rows(frame)
    raw = engine.raw_connection()
    try:
        conn: Any = raw.driver_connection  # psycopg's Connection (COPY is not in the DB-API)
        with conn.cursor() as cursor:
            cursor.execute(CREATE_STAGE)
            with cursor.copy(COPY_STAGE) as copy:
                copy.write(data)
            cursor.execute(statement)
        raw.commit()
    finally:
        raw.close()


def rebuild(engine: Engine, start: datetime, end: datetime) -> None:
    """Recompute every rollup bucket overlapping [start, end) from raw telemetry."""
    for resolution in RESOLUTIONS:
        name = resolution.table.name
        step = resolution.step
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"DELETE FROM {name} WHERE bucket >= date_bin(:step, CAST(:start AS timestamptz), "
                    "TIMESTAMPTZ '2000-01-01') AND bucket < :end"
                ),
                {"step": step, "start": start, "end": end},
            )
            conn.execute(
                text(
                    f"INSERT INTO {name} (device_id, key, bucket, {', '.join(PARTIAL_COLUMNS)}) "
                    "SELECT device_id, key, date_bin(:step, timestamp, TIMESTAMPTZ '2000-01-01') AS b, "
                    f"count(*), {_REBUILD_SUM}, {_REBUILD_SUMSQ}, "
                    "min(value), max(value), "
                    "(array_agg(timestamp ORDER BY value, timestamp))[1], "
                    "(array_agg(timestamp ORDER BY value DESC, timestamp))[1], "
                    "(array_agg(value ORDER BY timestamp))[1], min(timestamp), "
                    "(array_agg(value ORDER BY timestamp DESC))[1], max(timestamp) "
                    "FROM telemetry WHERE value IS NOT NULL "
                    "AND timestamp >= date_bin(:step, CAST(:start AS timestamptz), TIMESTAMPTZ '2000-01-01') "
                    "AND timestamp < :end GROUP BY device_id, key, b"
                ),
                {"step": step, "start": start, "end": end},
            )


class RollupMaintainer:
    """Keeps the rollup tables current from the bus; start() subscribes, stop() flushes what is pending."""

    def __init__(
        self, engine: Engine, bus: EventBus, flush_seconds: float = 2.0, repair: bool = True
    ) -> None:
        self.engine = engine
        self.repair = repair
        self.bus = bus
        self.flush_seconds = flush_seconds
        self._pending: list[pd.DataFrame] = []
        # Partials not yet upserted because the database was unreachable, per table, oldest first.
        self._deferred: dict[str, list[pd.DataFrame]] = {r.table.name: [] for r in RESOLUTIONS}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # the flush thread and stop() never fold at the same time
        self._unreachable = False
        self._flusher = Periodic("rollups", flush_seconds, self.flush)
        self._unsubscribe: Any = None

    def start(self) -> RollupMaintainer:
        """Repair the newest buckets a crash may have left short, then follow the bus."""
        if self.repair:
            self._repair_tail()
        self._unsubscribe = self.bus.subscribe(TELEMETRY_BATCH, self._on_batch)
        self._flusher.start()
        return self

    def stop(self) -> None:
        """Stop following the bus and write what is pending."""
        if self._unsubscribe:
            self._unsubscribe()
        self._flusher.stop()
        self.flush()
        if self.deferred:
            log.error("stopping with rollups deferred (database unreachable); next start repairs the tail")

    def _on_batch(self, topic: str, batch: TelemetryBatch) -> None:
        # The writer's thread publishes: only keep the frame here, the flush thread does the work.
        with self._lock:
            self._pending.append(batch.frame)

    @property
    def deferred(self) -> int:
        """Partial frames waiting for the database to come back."""
        return sum(len(frames) for frames in self._deferred.values())

    def flush(self) -> None:
        """Fold the pending batches into partials and upsert them now (deferred ones first)."""
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, []
            frame = pd.concat(pending, ignore_index=True) if pending else None
            folded = partials(frame, RESOLUTIONS) if frame is not None else None
            for index, resolution in enumerate(RESOLUTIONS):
                queue = self._deferred[resolution.table.name]
                if folded is not None:
                    queue.append(folded[index])
                self._upsert_queued(resolution, queue)

    def _upsert_queued(self, resolution: Resolution, queue: list[pd.DataFrame]) -> None:
        # Each frame is its own transaction: one that committed is never folded in twice.
        while queue:
            try:
                upsert(self.engine, resolution, queue[0])
            except Exception as error:
                if unreachable(error):
                    if not self._unreachable:
                        log.warning("rollup flushes deferred until the database answers: %s", error.args[0])
                    self._unreachable = True
                    return
                log.exception("rollup flush failed; the buckets are repaired at next start")
            queue.pop(0)
        if self._unreachable:
            log.warning("deferred rollup flushes written")
            self._unreachable = False

    def _repair_tail(self) -> None:
        with self.engine.connect() as conn:
            newest = conn.execute(select(func.max(telemetry_1m.c.bucket))).scalar()
        if newest is not None:
            # Partials not yet flushed when the last process stopped belong to the newest buckets.
            rebuild(
                self.engine, newest - timedelta(minutes=5), datetime.now(newest.tzinfo) + timedelta(days=1)
            )
