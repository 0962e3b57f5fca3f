"""Reading the platform's data from a notebook: devices, telemetry (binary COPY), Dask partitions."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.db.copy_format import PG_EPOCH_US

DATABASE_ENV = "WORKBENCH_DATABASE_URL"
READ_DATABASE_ENV = "WORKBENCH_DATABASE_READ_URL"
# The run context's flag saying whether its reads may lag (a replica): the runner sets it per run.
REPLICA_READS = "replica_reads"

_state: dict[str, Any] = {"connections": {}, "read_url": None}


def database_url() -> str:
    """The database the notebook reads: ``WORKBENCH_DATABASE_URL`` as injected by the runner or the lab."""
    url = os.environ.get(DATABASE_ENV)
    if not url:
        raise RuntimeError(
            f"{DATABASE_ENV} is not set: run the notebook through the workbench runner or `workbench lab`"
        )
    return url


def read_url() -> str:
    """The database read-only queries go to: the one given to :func:`use_read_database`, else the streaming
    replica (``WORKBENCH_DATABASE_READ_URL``) unless this run must see the primary (a live rule), else the
    primary."""
    chosen: str | None = _state["read_url"]
    if chosen:
        return chosen
    from workbench.notebooks.helpers.outputs import context  # the run's context (outputs imports this module)

    replica = os.environ.get(READ_DATABASE_ENV)
    if replica and context().get(REPLICA_READS, True):
        return replica
    return database_url()


def use_read_database(url: str | None) -> None:
    """Send this run's reads to ``url`` (a report kit given its own database); None: back to the default."""
    _state["read_url"] = url or None


def _connection(url: str | None = None) -> Any:
    """A cached autocommit connection to ``url`` (default: the primary), reopened when it broke (kernels
    outlive database restarts)."""
    import psycopg

    from workbench.db.engine import libpq_url

    url = url or database_url()
    conn = _state["connections"].get(url)
    if conn is None or conn.closed or conn.broken:
        conn = psycopg.connect(libpq_url(url), autocommit=True)
        _state["connections"][url] = conn
    return conn


def _reader() -> Any:
    """The connection read-only queries use (:func:`read_url`)."""
    return _connection(read_url())


def timestamp(value: Any) -> dt.datetime | None:
    """A timezone-aware UTC datetime from an ISO string, datetime or pandas Timestamp (naive means UTC)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    result: dt.datetime = stamp.to_pydatetime()
    return result


def devices() -> pd.DataFrame:
    """Every device (id, name, type, area, status) with the time of its newest telemetry."""
    rows = _reader().execute(
        "SELECT d.id, d.name, d.type, d.area, d.status,"
        " (SELECT max(t.timestamp) FROM telemetry t WHERE t.device_id = d.id) AS last_data"
        " FROM devices d ORDER BY d.name"
    )
    frame = pd.DataFrame(rows.fetchall(), columns=["id", "name", "type", "area", "status", "last_data"])
    frame["id"] = frame["id"].astype(str)
    frame["last_data"] = pd.to_datetime(frame["last_data"], utc=True)
    return frame


def device_id(device: str | uuid.UUID) -> uuid.UUID:
    """The id of a device given its id or its name."""
    if isinstance(device, uuid.UUID):
        return device
    try:
        return uuid.UUID(str(device))
    except ValueError:
        pass
    row = _reader().execute("SELECT id FROM devices WHERE name = %s ORDER BY created_at LIMIT 1", (device,))
    found = row.fetchone()
    if found is None:
        raise LookupError(f"no device named {device!r}")
    return uuid.UUID(str(found[0]))


def telemetry(
    device: str | uuid.UUID,
    keys: str | Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    *,
    wide: bool = True,
) -> pd.DataFrame:
    """Telemetry of one device in ``[start, end)``: one column per key indexed by UTC time (``wide``),
    or the long rows ``timestamp, key, value, quality`` when ``wide=False``."""
    if isinstance(keys, str):
        keys = [keys]
    ident = device_id(device)
    lower, upper = timestamp(start), timestamp(end)
    names = list(keys) if keys else _keys_of(ident, lower, upper)
    stamps, positions, values, quality = _read_binary(ident, names, lower, upper)
    if not wide:
        return pd.DataFrame(
            {
                "timestamp": stamps,
                "key": pd.Categorical.from_codes(positions, categories=names) if names else [],
                "value": values,
                "quality": quality,
            }
        ).sort_values(["timestamp", "key"], ignore_index=True, kind="stable")
    columns = {}
    for position, name in enumerate(names):
        chosen = positions == position
        column = pd.Series(values[chosen], index=stamps[chosen])
        columns[name] = column[~column.index.duplicated(keep="last")]
    table = pd.DataFrame(columns, columns=names) if names else pd.DataFrame()
    table.index = pd.DatetimeIndex(table.index, tz="UTC", name="timestamp")
    return table.sort_index()


# One bytea per read: the server packs each sample as fixed-width binary (key position int4, timestamptz int8
# microseconds since 2000, float8 value, int4 quality; NULLs as NaN and -1) and numpy reads it in one go.
# COPY TO STDOUT hands libpq one message per row, which costs the kernel ~1 µs of Python per sample.
_ROW = np.dtype([("position", ">i4"), ("micros", ">i8"), ("value", ">f8"), ("quality", ">i4")])


def _read_binary(
    ident: uuid.UUID, names: list[str], lower: dt.datetime | None, upper: dt.datetime | None
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Samples of ``names`` as arrays: times, key positions (index into ``names``), values, quality."""
    if not names:
        empty = np.array([], dtype=float)
        return pd.DatetimeIndex([], tz="UTC"), np.array([], dtype="int32"), empty, empty
    where = "device_id = %s AND key = ANY(%s)"
    args: list[Any] = [ident, names]
    if lower is not None:
        where += " AND timestamp >= %s"
        args.append(lower)
    if upper is not None:
        where += " AND timestamp < %s"
        args.append(upper)
    statement = (
        "SELECT string_agg(int4send((array_position(%s::text[], key::text) - 1)::int4)"
        " || timestamptz_send(timestamp) || float8send(COALESCE(value, 'NaN'::float8))"
        " || int4send(COALESCE(quality, -1)::int4), ''::bytea ORDER BY timestamp)"
        f" FROM telemetry WHERE {where}"
    )
    import psycopg

    try:
        with _reader().cursor(binary=True) as cur:
            row = cur.execute(statement, [names, *args]).fetchone()
    except psycopg.errors.ProgramLimitExceeded as error:  # a bytea holds at most 1 GB (~44M samples)
        raise MemoryError(f"{error}: read a shorter range, or use dask_telemetry for this one") from None
    rows = np.frombuffer(row[0] if row and row[0] else b"", dtype=_ROW)
    stamps = pd.to_datetime(rows["micros"].astype("int64") + PG_EPOCH_US, unit="us", utc=True)
    quality = rows["quality"].astype(float)
    quality[quality < 0] = np.nan
    return pd.DatetimeIndex(stamps), rows["position"].astype("int32"), rows["value"].astype(float), quality


def dask_telemetry(
    device: str | uuid.UUID,
    keys: str | Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    partition: str = "1D",
) -> Any:
    """Like :func:`telemetry` but lazy: a dask DataFrame with one partition per ``partition`` of time,
    for ranges larger than memory. Each partition is read by whichever worker computes it."""
    import dask.dataframe as dd

    lower, upper = timestamp(start), timestamp(end)
    if lower is None or upper is None:
        raise ValueError("dask_telemetry needs both start and end")
    key_list = [keys] if isinstance(keys, str) else list(keys or [])
    if not key_list:
        key_list = _keys_of(device_id(device), lower, upper)
    edges = list(pd.date_range(lower, upper, freq=partition))
    if not edges or edges[-1] < pd.Timestamp(upper):
        edges.append(pd.Timestamp(upper))
    slices = [(a.isoformat(), b.isoformat()) for a, b in itertools.pairwise(edges)]
    ident = str(device_id(device))
    meta = pd.DataFrame({key: pd.Series(dtype=float) for key in key_list})
    meta.index = pd.DatetimeIndex([], tz="UTC", name="timestamp")
    return dd.from_map(_slice, slices, ident=ident, keys=key_list, meta=meta)


def _slice(bounds: tuple[str, str], ident: str, keys: list[str]) -> pd.DataFrame:
    frame = telemetry(ident, keys, bounds[0], bounds[1])
    frame.index = pd.DatetimeIndex(frame.index, tz="UTC", name="timestamp")
    return frame.astype(float)


def _keys_of(ident: uuid.UUID, lower: dt.datetime | None, upper: dt.datetime | None) -> list[str]:
    """Keys the device sent in ``[lower, upper)`` (either bound may be open)."""
    rows = _reader().execute(
        "SELECT DISTINCT key FROM telemetry WHERE device_id = %s"
        " AND timestamp >= COALESCE(%s, '-infinity'::timestamptz)"
        " AND timestamp < COALESCE(%s, 'infinity'::timestamptz)",
        (ident, lower, upper),
    )
    return sorted(str(row[0]) for row in rows)
