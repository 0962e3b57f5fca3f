"""Import a plant from a ThingsBoard PostgreSQL database: devices, attributes, history, latest values, alarms.

Reads ThingsBoard's own tables (``device``, ``device_profile``, ``attribute_kv``, ``ts_kv`` with its key
dictionary, ``ts_kv_latest``, ``alarm``) in the layouts of ThingsBoard 3.x and 4.x. History moves as binary
COPY from a query that already has the workbench's column types straight into ``telemetry``, in chunks
each committed with its series' checkpoints (``thingsboard_history``), so an interrupted import resumes
where it stopped and a rerun adds nothing. Device ids stay ThingsBoard's, which makes devices and alarms
idempotent too.

Value mapping: ``dbl_v`` and ``long_v`` become ``value`` (a long beyond 2^53 also keeps its exact digits
in ``text_value``), ``bool_v`` becomes 1.0/0.0, ``str_v`` and ``json_v`` become ``text_value``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from ingest.importers import checkpoints
from ingest.importers import thingsboard_history as history
from ingest.importers.thingsboard_history import KEY_MAX

SOURCE = "thingsboard"
CHUNK_ROWS = 1_000_000  # a time slice across all series: ~100 MB of telemetry, one commit
SCOPES = {1: "CLIENT_SCOPE", 2: "SERVER_SCOPE", 3: "SHARED_SCOPE"}
FROM_THINGSBOARD = {"CRITICAL": "critical", "MAJOR": "critical", "MINOR": "warning", "WARNING": "warning"}


@dataclass
class Summary:
    """What an import did: counts per kind, rows skipped with their reasons."""

    devices: int = 0
    attributes: int = 0
    series: int = 0
    rows: int = 0
    latest: int = 0
    alarms: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        """The summary as lines a person reads."""
        out = [
            f"devices {self.devices}, attributes {self.attributes}, series {self.series}, "
            f"rows {self.rows}, latest values {self.latest}, alarms {self.alarms}"
        ]
        out += [f"skipped {count}: {reason}" for reason, count in sorted(self.skipped.items())]
        return out


Progress = Callable[[int], object]


class ThingsBoardImport:
    """One import from a ThingsBoard database (``source_url``) into the workbench's (``target_url``)."""

    def __init__(self, source_url: str, target_url: str, chunk_rows: int = CHUNK_ROWS) -> None:
        self.source_url = source_url
        self.target_url = target_url
        self.chunk_rows = chunk_rows
        self.summary = Summary()
        # The first and last source timestamp (ms) this run copied; None until a chunk is copied.
        self.imported_span: tuple[int, int] | None = None

    def run(self, start_progress: Callable[[int], Progress] | None = None) -> Summary:
        """Import everything; ``start_progress(total_rows)`` returns a callback told of each chunk's rows."""
        with (
            psycopg.connect(self.source_url, autocommit=True) as src,
            psycopg.connect(self.target_url, autocommit=True) as dst,
        ):
            columns = _columns(src)
            devices = self._devices(src, dst, columns)
            self._attributes(src, dst, columns, devices)
            self._history(src, dst, columns, devices, start_progress)
            self._latest(src, dst, columns, devices)
            self._alarms(src, dst, columns, devices)
        return self.summary

    # -- devices and attributes ---------------------------------------------------------------------

    def _devices(self, src: psycopg.Connection, dst: psycopg.Connection, columns: _Columns) -> set[uuid.UUID]:
        profile = "p.name" if "device_profile" in columns else "NULL"
        join = (
            "LEFT JOIN device_profile p ON p.id = d.device_profile_id" if "device_profile" in columns else ""
        )
        label = "d.label" if "label" in columns.get("device", ()) else "NULL"
        rows = src.execute(
            f"SELECT d.id, d.name, d.type, {profile}, {label}, d.additional_info FROM device d {join}"
        ).fetchall()
        with dst.transaction():
            for device_id, name, kind, profile_name, label_text, info in rows:
                origin: dict[str, Any] = {"profile": profile_name, "label": label_text}
                if info:
                    origin["additional_info"] = _json_or_text(info)
                meta = {"source": SOURCE, "thingsboard": origin}
                inserted = dst.execute(
                    "INSERT INTO devices (id, name, type, protocol, metadata) "
                    "VALUES (%s, %s, %s, 'mqtt', %s) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id",
                    (
                        device_id,
                        name or str(device_id),
                        (profile_name or kind or "default")[:50],
                        _jsonb(meta),
                    ),
                ).fetchone()
                self.summary.devices += inserted is not None
        return {row[0] for row in rows}

    def _attributes(
        self, src: psycopg.Connection, dst: psycopg.Connection, columns: _Columns, devices: set[uuid.UUID]
    ) -> None:
        have = columns.get("attribute_kv", ())
        if not have:
            return
        json_v = "json_v::text" if "json_v" in have else "NULL::text"
        values = f"bool_v, str_v, long_v, dbl_v, {json_v}"
        if "entity_type" in have:  # ThingsBoard before 3.7: names inline
            query = (
                f"SELECT entity_id, attribute_type, attribute_key, {values} FROM attribute_kv "
                "WHERE entity_type = 'DEVICE'"
            )
        else:  # 3.7 and later: scope as a number, key through the dictionary
            dictionary = "key_dictionary" if "key_dictionary" in columns else "ts_kv_dictionary"
            query = (
                f"SELECT a.entity_id, a.attribute_type, k.key, {values} FROM attribute_kv a "
                f"JOIN {dictionary} k ON k.key_id = a.attribute_key"
            )
        by_device: dict[uuid.UUID, dict[str, dict[str, Any]]] = {}
        for entity_id, scope, key, *typed in src.execute(query):
            if entity_id not in devices:
                continue
            scope_name = SCOPES.get(scope, str(scope)) if isinstance(scope, int) else scope
            by_device.setdefault(entity_id, {}).setdefault(scope_name, {})[key] = _typed(*typed)
            self.summary.attributes += 1
        with dst.transaction():
            for device_id, scopes in by_device.items():
                # Shared attributes are what ThingsBoard pushes to the device: the workbench's config.
                dst.execute(
                    "UPDATE devices SET config = COALESCE(config, '{}'::jsonb) || %s, "
                    "metadata = jsonb_set(COALESCE(metadata, '{}'::jsonb), '{thingsboard_attributes}', %s), "
                    "updated_at = now() WHERE id = %s",
                    (_jsonb(scopes.get("SHARED_SCOPE", {})), _jsonb(scopes), device_id),
                )

    # -- history ------------------------------------------------------------------------------------

    def _history(
        self,
        src: psycopg.Connection,
        dst: psycopg.Connection,
        columns: _Columns,
        devices: set[uuid.UUID],
        start_progress: Callable[[int], Progress] | None,
    ) -> None:
        series = history.find_series(src, devices, self.summary.skipped)
        left = history.remaining(series, checkpoints.load(dst, SOURCE))
        advance = start_progress(sum(p.rows for p in left)) if start_progress else (lambda rows: None)
        self.summary.series += len(left)
        json_v = "json_v" in columns["ts_kv"]
        slices = history.Slices(left, self.chunk_rows)
        for chunk in slices:
            rows = history.copy_chunk(src, dst, chunk, SOURCE, json_v)
            slices.copied(rows)
            self.summary.rows += rows
            advance(rows)
            first, upto = min(p.after for p in chunk) + 1, max(p.upto for p in chunk)
            old = self.imported_span
            self.imported_span = (first, upto) if old is None else (min(old[0], first), max(old[1], upto))

    # -- latest values and alarms -------------------------------------------------------------------

    def _latest(
        self, src: psycopg.Connection, dst: psycopg.Connection, columns: _Columns, devices: set[uuid.UUID]
    ) -> None:
        have = columns.get("ts_kv_latest", ())
        if not have or "entity_type" in have:  # ThingsBoard 2.x kept names inline: history covers it
            return
        json_v = "l.json_v::text" if "json_v" in have else "NULL::text"
        rows = src.execute(
            "SELECT l.entity_id, k.key, l.ts, l.bool_v, l.str_v, l.long_v, l.dbl_v, "
            f"{json_v} FROM ts_kv_latest l JOIN ts_kv_dictionary k ON k.key_id = l.key"
        ).fetchall()
        with dst.transaction():
            for entity_id, key, ts, bool_v, str_v, long_v, dbl_v, json_v_text in rows:
                if entity_id not in devices or len(key) > KEY_MAX:
                    continue
                value, text_value = _columns_of(bool_v, str_v, long_v, dbl_v, json_v_text)
                dst.execute(
                    "INSERT INTO latest_values (device_id, key, timestamp, value, quality, text_value) "
                    "VALUES (%s, %s, %s, %s, 100, %s) ON CONFLICT (device_id, key) DO UPDATE SET "
                    "timestamp = EXCLUDED.timestamp, value = EXCLUDED.value, "
                    "text_value = EXCLUDED.text_value "
                    "WHERE latest_values.timestamp < EXCLUDED.timestamp",
                    (entity_id, key, _instant(ts), value, text_value),
                )
                self.summary.latest += 1

    def _alarms(
        self, src: psycopg.Connection, dst: psycopg.Connection, columns: _Columns, devices: set[uuid.UUID]
    ) -> None:
        have = columns.get("alarm", ())
        if not have:
            return
        if "cleared" in have:  # 3.5 and later: flags
            state = "acknowledged, cleared"
        else:  # earlier: ACTIVE_UNACK, ACTIVE_ACK, CLEARED_UNACK, CLEARED_ACK
            state = "status IN ('ACTIVE_ACK', 'CLEARED_ACK'), status IN ('CLEARED_UNACK', 'CLEARED_ACK')"
        details = "additional_info" if "additional_info" in have else "details"
        rows = src.execute(
            f"SELECT id, originator_id, type, severity, start_ts, ack_ts, clear_ts, created_time, {details}, "
            f"{state} FROM alarm"
        ).fetchall()
        with dst.transaction():
            for alarm_id, device_id, kind, severity, start, ack, clear, created, info, acked, cleared in rows:
                if device_id not in devices:
                    self.summary.skipped["alarm of an entity that is not a device"] += 1
                    continue
                status = "resolved" if cleared else "acknowledged" if acked else "active"
                meta = {"source": SOURCE, "type": kind, "severity": severity}
                if info:
                    meta["details"] = _json_or_text(info)
                inserted = dst.execute(
                    "INSERT INTO alerts (id, device_id, severity, message, status, triggered_at, "
                    "acknowledged_at, resolved_at, created_at, metadata) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id",
                    (
                        alarm_id,
                        device_id,
                        FROM_THINGSBOARD.get(str(severity).upper(), "info"),
                        kind,
                        status,
                        _instant(start or created),
                        _instant(ack) if acked and ack else None,
                        _instant(clear) if cleared and clear else None,
                        _instant(created),
                        _jsonb(meta),
                    ),
                ).fetchone()
                self.summary.alarms += inserted is not None


_Columns = dict[str, tuple[str, ...]]


def _columns(src: psycopg.Connection) -> _Columns:
    """The columns of each ThingsBoard table this importer reads (absent tables are left out)."""
    tables = ("device", "device_profile", "attribute_kv", "ts_kv", "ts_kv_latest", "alarm", "key_dictionary")
    rows = src.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ANY(%s)",
        (list(tables),),
    ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    for needed in ("device", "ts_kv"):
        if needed not in found:
            raise ValueError(f"not a ThingsBoard database: table {needed!r} is missing")
    return {table: tuple(names) for table, names in found.items()}


def _columns_of(
    bool_v: bool | None, str_v: str | None, long_v: int | None, dbl_v: float | None, json_v: str | None
) -> tuple[float | None, str | None]:
    """The workbench's (value, text_value) of one typed ThingsBoard value (the mapping the COPY does)."""
    if dbl_v is not None:
        return dbl_v, None
    if long_v is not None:
        return float(long_v), str(long_v) if abs(long_v) > 2**53 else None
    if bool_v is not None:
        return (1.0 if bool_v else 0.0), None
    return None, str_v if str_v is not None else json_v


def _typed(
    bool_v: bool | None, str_v: str | None, long_v: int | None, dbl_v: float | None, json_v: str | None
) -> Any:
    """One ThingsBoard attribute as the JSON value it is."""
    for value in (bool_v, long_v, dbl_v, str_v):
        if value is not None:
            return value
    return orjson.loads(json_v) if json_v is not None else None


def _json_or_text(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value)


def _instant(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)
