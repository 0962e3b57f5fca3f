"""The helper library notebooks import: read telemetry, raise alerts, record values.

``from workbench.notebooks import helpers`` inside a rule, report or analyst notebook (``import api``, its
former name, still works). The runner starts each
kernel with ``WORKBENCH_DATABASE_URL`` set (so does ``workbench lab``). Alerts and records are published as
display data with workbench MIME types (JSON lists; one output per cell, at the cell's end, with a text line
per item for people): they stay in the executed notebook as evidence and the runner reads them back from
there, whichever way the notebook ran (warm kernel, plain papermill, a Dask worker).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from workbench.db.copy_format import PG_EPOCH_US
from workbench.severity import SEVERITIES

ALERT_MIME = "application/vnd.workbench.alert+json"
RECORD_MIME = "application/vnd.workbench.record+json"
DATABASE_ENV = "WORKBENCH_DATABASE_URL"
CONTEXT_ENV = "WORKBENCH_NOTEBOOK_CONTEXT"

_state: dict[str, Any] = {"connection": None, "alerts": [], "records": {}, "context": {}, "outbox": {}}


def database_url() -> str:
    """The database the notebook reads: ``WORKBENCH_DATABASE_URL`` as injected by the runner or the lab."""
    url = os.environ.get(DATABASE_ENV)
    if not url:
        raise RuntimeError(
            f"{DATABASE_ENV} is not set: run the notebook through the workbench runner or `workbench lab`"
        )
    return url


def _connection() -> Any:
    """A cached autocommit connection, reopened when it broke (kernels outlive database restarts)."""
    import psycopg

    from workbench.db.engine import libpq_url

    conn = _state["connection"]
    if conn is None or conn.closed or conn.broken:
        conn = psycopg.connect(libpq_url(database_url()), autocommit=True)
        _state["connection"] = conn
    return conn


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
    rows = _connection().execute(
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
    row = _connection().execute(
        "SELECT id FROM devices WHERE name = %s ORDER BY created_at LIMIT 1", (device,)
    )
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
        with _connection().cursor(binary=True) as cur:
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
    rows = _connection().execute(
        "SELECT DISTINCT key FROM telemetry WHERE device_id = %s"
        " AND timestamp >= COALESCE(%s, '-infinity'::timestamptz)"
        " AND timestamp < COALESCE(%s, 'infinity'::timestamptz)",
        (ident, lower, upper),
    )
    return sorted(str(row[0]) for row in rows)


def alert(
    severity: str,
    message: str,
    value: float | None = None,
    at: Any = None,
    device: str | uuid.UUID | None = None,
    key: str | None = None,
    *,
    end: Any = None,
    threshold: float | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """Raise an alert: ``at`` is when the condition began (default now), ``end`` when it cleared if it did.

    The platform turns it into an alert row linked to this executed notebook; in a backtest it is only
    reported as a would-be alert."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    when = timestamp(at) or dt.datetime.now(dt.UTC)
    payload = {
        "severity": severity,
        "message": str(message),
        "value": _jsonable(value),
        "threshold": _jsonable(threshold),
        "at": when.isoformat(),
        "end": _iso(end),
        "device": None if device is None else str(device),
        "key": key,
        "metadata": _jsonable(metadata),
    }
    _state["alerts"].append(payload)
    _publish(ALERT_MIME, payload, f"alert [{severity}] {message} (at {payload['at']})")
    return payload


def save_rule(
    name: str,
    notebook: str,
    parameters: dict[str, Any],
    device: str | uuid.UUID,
    keys: Sequence[str],
    *,
    window: str = "1h",
    every: str = "1m",
    severity: str = "warning",
    enabled: bool = False,
    description: str | None = None,
) -> uuid.UUID:
    """Write a ``notebook`` rule for one device (validated as the rules API does); returns its id.

    It runs ``notebook`` with ``parameters`` on new points of ``keys`` (at most ``every``) over the last
    ``window``; written disabled unless ``enabled``; the engine loads it at its next reload."""
    from psycopg.errors import UniqueViolation
    from psycopg.types.json import Jsonb

    import workbench.notebooks.rule_type  # noqa: F401  (registers the notebook rule type)
    from workbench.rules.validation import validate_rule

    ident = device_id(device)
    body = {
        "name": name,
        "type": "notebook",
        "device_id": str(ident),
        "condition": {
            "notebook": notebook,
            "parameters": _jsonable(parameters),
            "keys": list(keys),
            "window": window,
            "every": every,
        },
        "action": {"type": "alert", "severity": severity},
        "enabled": enabled,
    }
    errors = validate_rule(body)
    if errors:
        raise ValueError(f"invalid rule: {errors}")
    try:
        row = (
            _connection()
            .execute(
                "INSERT INTO rules (name, description, type, device_id, condition, action, enabled)"
                " VALUES (%s, %s, 'notebook', %s, %s, %s, %s) RETURNING id",
                (name.strip(), description, ident, Jsonb(body["condition"]), Jsonb(body["action"]), enabled),
            )
            .fetchone()
        )
    except UniqueViolation:  # the rules' unique name index (workbench.rules.service says the same)
        raise ValueError(f"a rule named {name.strip()!r} exists: rules need distinct names") from None
    return uuid.UUID(str(row[0]))


def record(name: str, value: Any) -> None:
    """Record a named value (a score, a count, a small table) in the run result."""
    clean = _jsonable(value)
    _state["records"][str(name)] = clean
    shown = json.dumps(clean, default=str)
    shown = shown if len(shown) <= 200 else shown[:197] + "..."
    _publish(RECORD_MIME, {"name": str(name), "value": clean}, f"record {name} = {shown}")


def episodes(flags: pd.Series, min_length: int = 1) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The (first, last) timestamps of each run of consecutive true flags at least ``min_length`` long."""
    return [(flags.index[a], flags.index[b - 1]) for a, b in _runs(flags, min_length)]


def _runs(flags: pd.Series, min_length: int) -> list[tuple[int, int]]:
    """Positions ``[a, b)`` of each run of consecutive true flags at least ``min_length`` long."""
    values = flags.fillna(False).astype(bool).to_numpy()
    edges = np.diff(np.concatenate([[0], values.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # stop is one past the run
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b - a >= min_length]


class Windows(NamedTuple):
    """The baseline (training) and monitoring windows of a rule evaluation, UTC, half-open."""

    baseline_start: dt.datetime
    baseline_end: dt.datetime
    start: dt.datetime
    end: dt.datetime


def windows(
    start: Any = None,
    end: Any = None,
    window: str = "1h",
    baseline_start: Any = None,
    baseline_end: Any = None,
    baseline: str = "24h",
) -> Windows:
    """Resolve a rule's windows: monitoring ``[start, end)`` (defaults: ``end`` now, ``start`` one
    ``window`` earlier) and baseline ``[baseline_start, baseline_end)`` (default: the ``baseline``
    duration right before ``start``)."""
    upper = timestamp(end) or dt.datetime.now(dt.UTC)
    lower = timestamp(start) or upper - pd.Timedelta(window).to_pytimedelta()
    base_end = timestamp(baseline_end) or lower
    base_start = timestamp(baseline_start) or base_end - pd.Timedelta(baseline).to_pytimedelta()
    return Windows(base_start, base_end, lower, upper)


def beyond(deviation: pd.Series, limit: float, side: str = "both") -> pd.Series:
    """Flags where ``deviation`` passes ``limit``: below ``-limit`` (``lower``), above it (``upper``) or
    either (``both``)."""
    if side == "lower":
        return deviation < -limit
    if side == "upper":
        return deviation > limit
    if side == "both":
        return deviation.abs() > limit
    raise ValueError(f"side must be lower, upper or both, got {side!r}")


def alert_episodes(
    flags: pd.Series,
    score: pd.Series,
    *,
    severity: str,
    message: str,
    device: str | uuid.UUID | None = None,
    key: str | None = None,
    threshold: float | None = None,
    min_length: int = 1,
) -> int:
    """One alert per run of consecutive flagged samples: ``at`` its first sample, ``end`` its last,
    ``value`` the most extreme ``score`` in it. ``message`` may use ``{key}``, ``{value}``, ``{threshold}``,
    ``{start}`` and ``{end}``. A run that reaches the last sample is ``ongoing`` (metadata): the platform
    keeps its alert open instead of resolving it at ``end``. Returns how many alerts were raised."""
    count = 0
    # Positional slices of numpy arrays: a rule may raise dozens of alerts per run, and label slicing of
    # a DatetimeIndex costs a few hundred microseconds each time.
    aligned = score if score.index.equals(flags.index) else score.reindex(flags.index)
    scores = aligned.to_numpy(dtype=float, na_value=np.nan)
    for a, b in _runs(flags, min_length):
        first, last = flags.index[a], flags.index[b - 1]
        part = scores[a:b][~np.isnan(scores[a:b])]
        value = float(part[np.argmax(np.abs(part))]) if len(part) else None
        ongoing = b == len(flags)
        text = message.format(key=key, value=value, threshold=threshold, start=first, end=last)
        alert(
            severity,
            text,
            value=value,
            at=first,
            device=device,
            key=key,
            end=last,
            threshold=threshold,
            samples=b - a,
            ongoing=bool(ongoing),
        )
        count += 1
    return count


def context() -> dict[str, Any]:
    """What the runner told this run: ``run_id``, ``dry_run`` (backtest) and the notebook's path."""
    if not _state["context"] and os.environ.get(CONTEXT_ENV):  # a cold kernel started for this run alone
        _state["context"] = json.loads(os.environ[CONTEXT_ENV])
    return dict(_state["context"])


def collected() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Alerts and records raised since the run began (useful when calling the API outside a kernel)."""
    return list(_state["alerts"]), dict(_state["records"])


def _begin(run_context: dict[str, Any]) -> None:
    """Called by the warm runner before each run: empty the user namespace (variables, imports, output
    history) and forget the previous run's alerts, records and context.

    Cheaper than ``%reset -f``, which forces a full garbage collection (100-300 ms with pandas loaded)."""
    _state["alerts"] = []
    _state["records"] = {}
    _state["outbox"] = {}
    _state["context"] = dict(run_context)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    namespace, hidden = shell.user_ns, shell.user_ns_hidden
    for name in [name for name in namespace if name not in hidden and not name.startswith("__")]:
        del namespace[name]
    if isinstance(namespace.get("_oh"), dict):
        namespace["_oh"].clear()
    namespace.update({"_": "", "__": "", "___": ""})
    history = shell.history_manager
    del history.input_hist_parsed[1:], history.input_hist_raw[1:]
    shell.execution_count = 1


def _publish(mime: str, item: dict[str, Any], line: str) -> None:
    """Queue an alert or record for the output published when the current cell ends (inside IPython).

    One display per cell rather than one per item: each display costs the kernel an IOPub round trip and
    a stream flush, and a rule may raise dozens of alerts in one cell."""
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: the collected lists are the result
        return
    shell = get_ipython()
    if shell is None:
        return
    if _flush_outbox not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _flush_outbox)
    box = _state["outbox"]
    box.setdefault(mime, []).append(item)
    box.setdefault("text/plain", []).append(line)


def _flush_outbox(result: Any = None) -> None:
    """Publish the cell's queued alerts and records as one output (runs after every cell, failed or not)."""
    box, _state["outbox"] = _state["outbox"], {}
    if not box:
        return
    from IPython.display import display

    box["text/plain"] = "\n".join(box["text/plain"])
    display(box, raw=True)


def _iso(value: Any) -> str | None:
    stamp = timestamp(value)
    return None if stamp is None else stamp.isoformat()


def _jsonable(value: Any) -> Any:
    """Plain JSON types from numpy, pandas and datetime values (NaN becomes None)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dt.datetime | pd.Timestamp):
        return _iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, pd.DataFrame):
        return _jsonable(value.reset_index().to_dict(orient="records"))
    if isinstance(value, pd.Series):
        return _jsonable(value.to_dict())
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_jsonable(item) for item in value]
    return str(value)
