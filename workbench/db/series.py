"""Telemetry series on the server: bucketed aggregates, LTTB downsampling and streamed exports."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, Row, text
from tsdownsample import LTTBDownsampler

# SQL of each aggregate over the bucket's rows (first/last by time, not by arrival).
FUNCTIONS = {
    "avg": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "sum": "sum(value)",
    "count": "count(value)",
    "stddev": "stddev_samp(value)",
    "first": "(array_agg(value ORDER BY timestamp ASC))[1]",
    "last": "(array_agg(value ORDER BY timestamp DESC))[1]",
}
# The same aggregates over rollup rows (sums of partials; stddev from the sum of squares).
ROLLUP_FUNCTIONS = {
    "avg": "sum(sum) / sum(count)",
    "min": "min(min)",
    "max": "max(max)",
    "sum": "sum(sum)",
    "count": "sum(count)",
    "stddev": "CASE WHEN sum(count) > 1 THEN "
    "sqrt(greatest(sum(sumsq) - sum(sum) ^ 2 / sum(count), 0) / (sum(count) - 1)) END",
    "first": "(array_agg(first ORDER BY first_at ASC))[1]",
    "last": "(array_agg(last ORDER BY last_at DESC))[1]",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CALENDAR = ("day", "week", "month", "quarter", "year")
_APPROX_DAYS = {"day": 1, "week": 7, "month": 28, "quarter": 90, "year": 365}
_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 604800,
    "week": 604800,
}
_INTERVAL = re.compile(r"^\s*(\d{1,9})\s*([a-z]+?)s?\s*$")
MAX_BUCKETS = 100_000
# Fixed buckets start at a Monday midnight in the requested zone, so "1d" or "1w" align with local days.
ORIGIN = datetime(2000, 1, 3)
EXPORT_COLUMNS = ("timestamp", "device_id", "key", "value", "text_value", "unit", "quality")
EXPORT_CHUNK = 20_000


class SeriesError(ValueError):
    """A series request that cannot be answered; ``field`` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_interval(raw: str) -> timedelta | str:
    """A fixed step (``90s``, ``5m``, ``1 hour``, ``2d``) or a calendar unit (``day``..``year``)."""
    raw = raw.strip().lower()
    if raw in CALENDAR:
        return raw
    match = _INTERVAL.match(raw)
    if not match or match.group(2) not in _UNITS:
        raise SeriesError("interval", f"{raw!r}: use N followed by s, m, h, d or w, or one of {CALENDAR}")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise SeriesError("interval", "interval must be positive")
    return timedelta(seconds=seconds)


def bucket_count(start: datetime, end: datetime, step: timedelta | str) -> int:
    """How many buckets a range makes (approximate for calendar units)."""
    if isinstance(step, str):
        return int((end - start).days / _APPROX_DAYS[step]) + 1
    return int((end - start) / step) + 1


def aggregate(
    engine: Engine,
    device_id: uuid.UUID,
    keys: list[str],
    start: datetime,
    end: datetime,
    step: timedelta | str,
    functions: list[str],
    zone: str,
    use_rollups: bool = True,
) -> list[dict[str, Any]]:
    """Rows ``{key, bucket, values: {fn: value}}`` for each bucket holding data, ordered by key and time.

    Whole minute or hour buckets are read from the rollup tables when the range and the bucket grid
    line up with them (same results, a few thousand rows instead of millions); otherwise raw rows.
    """
    if bucket_count(start, end, step) > MAX_BUCKETS:
        raise SeriesError(
            "interval", f"more than {MAX_BUCKETS} buckets: widen the interval or shorten the range"
        )
    params: dict[str, Any] = {"device": device_id, "keys": keys, "start": start, "end": end}
    if isinstance(step, str):
        params.update(unit=step, zone=zone)
    else:
        params.update(step=step, origin=ORIGIN.replace(tzinfo=ZoneInfo(zone)))
    rollup = _rollup_for(start, end, step, zone) if use_rollups else None
    with engine.begin() as conn:
        _interactive(conn)
        rows = conn.execute(_aggregate_sql(rollup, step, functions), params).all() if rollup else []
        # Rows loaded around the ingest path (bulk SQL, before `workbench db rollups`) have no rollup yet.
        if not rows:
            rows = conn.execute(_aggregate_sql(None, step, functions), params).all()
    zone_info = ZoneInfo(zone)
    return [
        {
            "key": row.key,
            "bucket": row.bucket.astimezone(zone_info),
            "values": {name: _number(getattr(row, name)) for name in functions},
        }
        for row in rows
    ]


def _aggregate_sql(rollup: str | None, step: timedelta | str, functions: list[str]) -> Any:
    source, time, expressions = (
        (rollup, "bucket", ROLLUP_FUNCTIONS) if rollup else ("telemetry", "timestamp", FUNCTIONS)
    )
    bucket = (
        f"date_trunc(:unit, {time}, :zone)" if isinstance(step, str) else f"date_bin(:step, {time}, :origin)"
    )
    columns = ", ".join(f"{expressions[name]} AS {name}" for name in functions)
    return text(
        f"SELECT key, {bucket} AS bucket, {columns} FROM {source} "
        f"WHERE device_id = :device AND key = ANY(:keys) AND {time} >= :start AND {time} < :end "
        "GROUP BY 1, 2 ORDER BY 1, 2"  # positions: a rollup has a column named bucket too
    )


def _rollup_for(start: datetime, end: datetime, step: timedelta | str, zone: str) -> str | None:
    """The coarsest rollup table whose buckets tile both the range and the requested bucket grid."""
    offset = ORIGIN.replace(tzinfo=ZoneInfo(zone)).utcoffset() or timedelta(0)
    for table, width in (("telemetry_1h", timedelta(hours=1)), ("telemetry_1m", timedelta(minutes=1))):
        edges_fit = all(_aligned(moment, width) for moment in (start, end))
        grid_fits = offset % width == timedelta(0) and (isinstance(step, str) or step % width == timedelta(0))
        if edges_fit and grid_fits:
            return table
    return None


def _aligned(moment: datetime, width: timedelta) -> bool:
    return (moment - EPOCH) % width == timedelta(0)


def _interactive(conn: Connection) -> None:
    # Chart queries touch ~100k rows: JIT compilation costs more than it saves, and grouping that
    # spills to disk at the default work_mem doubles the time. Both settings end with the transaction.
    conn.execute(text("SET LOCAL jit = off"))
    conn.execute(text("SET LOCAL work_mem = '64MB'"))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


_DOWNSAMPLE_RAW = (
    "SELECT min(value) AS lo, max(value) AS hi, "
    "(array_agg(timestamp ORDER BY value ASC, timestamp))[1] AS lo_at, "
    "(array_agg(timestamp ORDER BY value DESC, timestamp))[1] AS hi_at "
    "FROM telemetry WHERE device_id = :device AND key = :key AND value IS NOT NULL "
    "AND timestamp >= :start AND timestamp < :end GROUP BY date_bin(:step, timestamp, :start)"
)
_DOWNSAMPLE_ROLLUP = (
    "SELECT min(min) AS lo, max(max) AS hi, "
    "(array_agg(min_at ORDER BY min ASC, min_at))[1] AS lo_at, "
    "(array_agg(max_at ORDER BY max DESC, max_at))[1] AS hi_at "
    "FROM {table} WHERE device_id = :device AND key = :key "
    "AND bucket >= :start AND bucket < :end GROUP BY date_bin(:step, bucket, :start)"
)


def downsample(
    engine: Engine,
    device_id: uuid.UUID,
    key: str,
    start: datetime,
    end: datetime,
    points: int,
    use_rollups: bool = True,
) -> list[tuple[datetime, float]]:
    """At most ``points`` (time, value) pairs keeping the series' shape: MinMaxLTTB.

    The database keeps each bucket's min and max (with their times) over ``2 * points`` buckets, so a
    year of raw data never leaves PostgreSQL; LTTB (tsdownsample) then picks ``points`` of those.
    """
    buckets = max(1, 2 * points)
    step = max((end - start) / buckets, timedelta(microseconds=1))
    params = {"device": device_id, "key": key, "start": start, "end": end, "step": step}
    with engine.begin() as conn:
        _interactive(conn)
        rows: Sequence[Row[Any]] = []
        # A bucket as wide as a rollup's reads the rollup's min/max and their times: same points.
        for table, width in (("telemetry_1h", timedelta(hours=1)), ("telemetry_1m", timedelta(minutes=1))):
            if use_rollups and step >= width:
                rows = conn.execute(text(_DOWNSAMPLE_ROLLUP.format(table=table)), params).all()
                if rows:
                    break
        if not rows:
            rows = conn.execute(text(_DOWNSAMPLE_RAW), params).all()
    picked: dict[datetime, float] = {}
    for row in rows:
        picked[row.lo_at] = float(row.lo)
        picked[row.hi_at] = float(row.hi)
    series = sorted(picked.items())
    if len(series) <= points:
        return series
    x = np.fromiter((t.timestamp() for t, _ in series), dtype=np.float64, count=len(series))
    y = np.fromiter((v for _, v in series), dtype=np.float64, count=len(series))
    keep = LTTBDownsampler().downsample(x, y, n_out=points)
    return [series[i] for i in keep]


def _export_rows(
    engine: Engine, device_id: uuid.UUID, keys: list[str] | None, start: datetime, end: datetime
) -> Iterator[list[Any]]:
    sql = (
        "SELECT timestamp, device_id, key, value, text_value, unit, quality FROM telemetry "
        "WHERE device_id = :device AND timestamp >= :start AND timestamp < :end"
    )
    params: dict[str, Any] = {"device": device_id, "start": start, "end": end}
    if keys:
        sql += " AND key = ANY(:keys)"
        params["keys"] = keys
    sql += " ORDER BY timestamp, key"
    # A server-side cursor: rows flow to the client in chunks, memory stays flat for any range.
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=EXPORT_CHUNK).execute(
            text(sql), params
        )
        for chunk in result.partitions(EXPORT_CHUNK):
            yield [tuple(row) for row in chunk]


def export_csv(
    engine: Engine, device_id: uuid.UUID, keys: list[str] | None, start: datetime, end: datetime
) -> Iterator[bytes]:
    """CSV bytes, header first, streamed chunk by chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    yield buffer.getvalue().encode()
    for chunk in _export_rows(engine, device_id, keys, start, end):
        buffer.seek(0)
        buffer.truncate()
        for row in chunk:
            writer.writerow((row[0].isoformat(), *row[1:]))
        yield buffer.getvalue().encode()


PARQUET_SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("device_id", pa.string()),
        ("key", pa.string()),
        ("value", pa.float64()),
        ("text_value", pa.string()),
        ("unit", pa.string()),
        ("quality", pa.int32()),
    ]
)


class _Sink(io.RawIOBase):
    """A write-only file whose bytes are collected and handed out as they come."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        """Parquet writes here."""
        return True

    def write(self, data: Any) -> int:
        """Keep the bytes for the next yield."""
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        """Everything written since the last take."""
        out, self.parts = b"".join(self.parts), []
        return out


def export_parquet(
    engine: Engine, device_id: uuid.UUID, keys: list[str] | None, start: datetime, end: datetime
) -> Iterator[bytes]:
    """Parquet bytes, one row group per chunk, streamed as each group is written."""
    sink = _Sink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), PARQUET_SCHEMA)
    for chunk in _export_rows(engine, device_id, keys, start, end):
        columns: dict[str, Any] = dict(zip(EXPORT_COLUMNS, zip(*chunk, strict=True), strict=True))
        columns["device_id"] = [str(d) for d in columns["device_id"]]
        writer.write_table(pa.Table.from_pydict(columns, schema=PARQUET_SCHEMA))
        yield sink.take()
    writer.close()
    yield sink.take()
