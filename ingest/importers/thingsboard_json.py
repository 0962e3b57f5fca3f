"""Import ThingsBoard REST timeseries JSON (``{"key": [{"ts": ms, "value": …}]}``) for one device.

This is what ThingsBoard's ``GET /api/plugins/telemetry/DEVICE/{id}/values/timeseries`` returns. Values
arrive as strings in older versions and typed in newer ones: numbers (and numeric strings) become ``value``,
``true``/``false`` become 1.0/0.0, anything else ``text_value`` (objects as their JSON). Points at or before
a series' checkpoint are skipped, so a rerun adds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from ingest.importers import checkpoints
from ingest.importers.thingsboard import Summary
from ingest.importers.thingsboard_history import KEY_MAX

SOURCE = "thingsboard-json"


def find_or_create_device(conn: psycopg.Connection, name: str, summary: Summary) -> str:
    """The id of the device named (or with the id) ``name``; created as a ThingsBoard import when missing."""
    found = conn.execute(
        "SELECT id FROM devices WHERE id::text = %s OR name = %s ORDER BY created_at LIMIT 1", (name, name)
    ).fetchone()
    if found:
        return str(found[0])
    created = conn.execute(
        "INSERT INTO devices (name, type, protocol, metadata) "
        "VALUES (%s, 'default', 'http', %s) RETURNING id",
        (name, Jsonb({"source": "thingsboard"})),
    ).fetchone()
    assert created is not None
    summary.devices += 1
    return str(created[0])


def import_file(target_url: str, path: Path, device: str, summary: Summary) -> tuple[int, int] | None:
    """Import one JSON file into ``device``; the (first, last) ms imported, None when nothing was new."""
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected an object of keys, each a list of {{ts, value}}")
    span: tuple[int, int] | None = None
    with psycopg.connect(target_url, autocommit=True) as conn:
        device_id = find_or_create_device(conn, device, summary)
        done = checkpoints.load(conn, SOURCE)
        for key, points in document.items():
            if len(key) > KEY_MAX:
                summary.skipped[f"key longer than {KEY_MAX} characters"] += len(points or [])
                continue
            rows = list(_rows(points, summary))
            last = done.get(f"{device_id}/{key}")
            fresh = sorted((row for row in rows if last is None or row[0] > last), key=lambda row: row[0])
            summary.skipped["already imported (at or before the checkpoint)"] += len(rows) - len(fresh)
            if not fresh:
                continue
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(
                    "COPY telemetry (timestamp, device_id, key, value, quality, text_value) FROM STDIN"
                ) as copy:
                    for ts, value, text in fresh:
                        copy.write_row(
                            (datetime.fromtimestamp(ts / 1000, UTC), device_id, key, value, 100, text)
                        )
                checkpoints.advance(conn, SOURCE, f"{device_id}/{key}", fresh[-1][0], len(fresh))
            summary.series += 1
            summary.rows += len(fresh)
            first, newest = fresh[0][0], fresh[-1][0]
            span = (first, newest) if span is None else (min(span[0], first), max(span[1], newest))
    return span


def _rows(points: Any, summary: Summary) -> Iterable[tuple[int, float | None, str | None]]:
    if not isinstance(points, list):
        summary.skipped["a key whose points are not a list"] += 1
        return
    for point in points:
        if not isinstance(point, dict) or not isinstance(point.get("ts"), int) or "value" not in point:
            summary.skipped["a point without an integer ts and a value"] += 1
            continue
        value, text = typed(point["value"])
        yield point["ts"], value, text


def typed(raw: Any) -> tuple[float | None, str | None]:
    """(value, text_value) of one REST value, strings parsed the way ThingsBoard wrote them."""
    if isinstance(raw, bool):
        return (1.0 if raw else 0.0), None
    if isinstance(raw, int | float):
        return (float(raw), None) if math.isfinite(raw) else (None, str(raw))
    if isinstance(raw, str):
        if raw in ("true", "false"):
            return (1.0 if raw == "true" else 0.0), None
        try:
            number = float(raw)
        except ValueError:
            return None, raw
        return (number, None) if math.isfinite(number) else (None, raw)
    return None, orjson.dumps(raw).decode()
