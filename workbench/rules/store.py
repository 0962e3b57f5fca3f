"""Database side of the engine: enabled rules, the device directory, rule_state, telemetry history."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from workbench.db.copy_format import copy_out, tuples
from workbench.db.tables import devices, rule_state, rules
from workbench.rules.types import Rule, RuleState


def load_rules(engine: Engine, enabled_only: bool = True) -> list[Rule]:
    """Every (enabled) rule, highest priority first."""
    query = select(rules).order_by(rules.c.priority.desc(), rules.c.created_at)
    if enabled_only:
        query = query.where(rules.c.enabled)
    with engine.connect() as conn:
        return [Rule.from_row(row) for row in conn.execute(query).mappings()]


@dataclass(frozen=True)
class DeviceInfo:
    """What targets and messages need to know about a device."""

    name: str
    type: str
    area: str | None


class DeviceDirectory:
    """Cache of device name/type/area by id; unknown ids are looked up in one query per batch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._known: dict[str, DeviceInfo] = {}
        self._lock = threading.Lock()
        self.version = 0

    def refresh(self, ids: Iterable[str] | None = None) -> None:
        """Reload all devices (``ids`` None) or just these."""
        query = select(devices.c.id, devices.c.name, devices.c.type, devices.c.area)
        if ids is not None:
            wanted = [uuid.UUID(i) for i in ids]
            if not wanted:
                return
            query = query.where(devices.c.id.in_(wanted))
        with self.engine.connect() as conn:
            found = {str(r.id): DeviceInfo(r.name, r.type, r.area) for r in conn.execute(query)}
        with self._lock:
            self._known.update(found)
            self.version += 1

    def ensure(self, ids: Iterable[str]) -> None:
        """Make sure every id is known (devices created since the last look)."""
        missing = [i for i in ids if i not in self._known]
        if missing:
            self.refresh(missing)

    def ids(self) -> list[str]:
        """Every known device id."""
        return list(self._known)

    def get(self, device_id: str) -> DeviceInfo | None:
        """The device's info, if known."""
        return self._known.get(device_id)

    def matching(self, target: dict[str, Any] | None, device_id: str | None) -> set[str] | None:
        """Device ids a target covers (None: every device)."""
        if target is None:
            return {device_id} if device_id else None
        if "device_id" in target:
            return {str(target["device_id"])}
        if "device_ids" in target:
            return {str(i) for i in target["device_ids"]}
        if "device_type" in target:
            return {i for i, d in self._known.items() if d.type == target["device_type"]}
        if "area" in target:
            return {i for i, d in self._known.items() if d.area == target["area"]}
        return None


def load_states(engine: Engine, rule_ids: list[str]) -> dict[str, RuleState]:
    """The persisted per-device state of these rules, in one query (rules without state are absent)."""
    if not rule_ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(rule_state.c.rule_id, rule_state.c.device_id, rule_state.c.state).where(
                rule_state.c.rule_id.in_([uuid.UUID(r) for r in rule_ids])
            )
        )
        states: dict[str, RuleState] = {}
        for row in rows:
            states.setdefault(str(row.rule_id), RuleState()).devices[str(row.device_id)] = dict(row.state)
        return states


_SAVE_STATES = """
INSERT INTO rule_state (rule_id, device_id, state)
SELECT * FROM unnest(%(rules)s::uuid[], %(devices)s::uuid[], %(states)s::jsonb[])
ON CONFLICT (rule_id, device_id) DO UPDATE SET state = excluded.state, updated_at = now()
"""


def save_states(engine: Engine, changed: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Upsert (rule_id, device_id, state) rows (each pair at most once) in one statement.

    Arrays through ``unnest``: one round trip and no statement building, as this runs in most frames.
    """
    if not changed:
        return
    params = {
        "rules": [uuid.UUID(r) for r, _, _ in changed],
        "devices": [uuid.UUID(d) for _, d, _ in changed],
        "states": [json.dumps(state) for _, _, state in changed],
    }
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(_SAVE_STATES, params)
        raw.commit()
    finally:
        raw.close()


def telemetry_frame(
    engine: Engine,
    keys: Iterable[str],
    device_ids: Iterable[str] | None,
    start_ns: int,
    end_ns: int,
    limit: int = 2_000_000,
) -> pd.DataFrame:
    """Stored numeric points of ``keys`` (and devices) with start <= timestamp < end, as a rule frame."""
    where = ["key = ANY(%(keys)s)", "timestamp >= %(start)s", "timestamp < %(end)s", "value IS NOT NULL"]
    params: dict[str, Any] = {
        "keys": list(keys),
        "start": pd.Timestamp(start_ns, tz="UTC").to_pydatetime(),
        "end": pd.Timestamp(end_ns, tz="UTC").to_pydatetime(),
        "limit": limit,
    }
    if device_ids is not None:
        where.append("device_id = ANY(%(devices)s)")
        params["devices"] = [uuid.UUID(d) for d in device_ids]
    sql = (
        "SELECT timestamp, device_id::text AS device_id, key, value FROM telemetry WHERE "
        + " AND ".join(where)
        + " ORDER BY timestamp LIMIT %(limit)s"
    )
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    finally:
        raw.close()
    frame = pd.DataFrame(rows, columns=["timestamp", "device_id", "key", "value"])
    return with_ns(frame)


# Bucket aggregates of each device's stored points in [first - window, first), the lower edge aligned to a
# bucket (the live window keeps whole buckets). Sent as binary COPY of fixed-width columns, read by numpy in
# one step: no Python object per value (a start reads tens of thousands of buckets).
_WINDOW_SQL = """
COPY (
WITH firsts AS (
    SELECT f.device_id, f.first_ns, f.idx - 1 AS idx
    FROM unnest(%(ids)s::uuid[], %(firsts)s::bigint[]) WITH ORDINALITY AS f(device_id, first_ns, idx)
), points AS (
    SELECT f.idx, t.value - %(ref)s::float8 AS v,
           (extract(epoch FROM t.timestamp) * 1e6)::bigint * 1000 AS ns
    FROM telemetry t JOIN firsts f ON t.device_id = f.device_id
    WHERE t.key = %(key)s AND t.value IS NOT NULL
      AND t.timestamp >= to_timestamp(
          ((f.first_ns - %(window)s::bigint) / %(width)s::bigint * %(width)s::bigint) / 1e9::float8)
      AND t.timestamp < to_timestamp(f.first_ns / 1e9::float8)
)
SELECT idx, ns / %(width)s::bigint * %(width)s::bigint AS bucket, count(*)::float8, sum(v), sum(v * v),
       min(v), max(v), min(ns), (array_agg(v ORDER BY ns))[1], max(ns), (array_agg(v ORDER BY ns DESC))[1]
FROM points GROUP BY 1, 2
) TO STDOUT (FORMAT BINARY)
"""
_WINDOW_COLUMNS = (
    ("index", "i8"),
    ("bucket", "i8"),
    ("n", "f8"),
    ("s", "f8"),
    ("ss", "f8"),
    ("mn", "f8"),
    ("mx", "f8"),
    ("ft", "i8"),
    ("fv", "f8"),
    ("lt", "i8"),
    ("lv", "f8"),
)
# A binary COPY tuple: field count (int16), then per field its length (int32) and 8 bytes, big-endian.
_WINDOW_ROW = np.dtype(
    [("fields", ">i2")]
    + [field for name, kind in _WINDOW_COLUMNS for field in ((f"{name}_len", ">i4"), (name, ">" + kind))]
)


def window_aggregates(
    engine: Engine, ids: list[str], firsts: list[int], key: str, window: int, width: int, ref: float
) -> dict[str, np.ndarray]:
    """Per (device, bucket) aggregates of each device's stored points in [first - window, first), in SQL.

    Columns as numpy arrays: ``index`` (the device's position in ``ids``), ``bucket`` (start, ns), ``n``,
    ``s``, ``ss`` (count, sum and sum of squares of value - ref), ``mn``, ``mx``, ``ft``/``fv`` and
    ``lt``/``lv`` (time and value - ref of the oldest and newest point).
    """
    params = {
        "ids": [uuid.UUID(i) for i in ids],
        "firsts": firsts,
        "key": key,
        "window": window,
        "width": width,
        "ref": ref,
    }
    return parse_window_copy(copy_out(engine, _WINDOW_SQL, params))


def parse_window_copy(data: bytes) -> dict[str, np.ndarray]:
    """The columns of a binary COPY of window aggregates (every field 8 bytes, none NULL)."""
    rows = np.frombuffer(tuples(data), dtype=_WINDOW_ROW)
    widths = [rows[f"{name}_len"] for name, _ in _WINDOW_COLUMNS]
    if len(rows) and not ((rows["fields"] == len(_WINDOW_COLUMNS)).all() and (np.array(widths) == 8).all()):
        raise ValueError("unexpected window aggregate row (a NULL or a column of another width)")
    return {name: rows[name].astype(kind) for name, kind in _WINDOW_COLUMNS}


def with_ns(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the ``ts`` column (int64 nanoseconds since the epoch, UTC) rules work on."""
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    frame = frame.assign(timestamp=stamps)
    frame["ts"] = stamps.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
    frame["value"] = frame["value"].astype(np.float64)
    return frame
