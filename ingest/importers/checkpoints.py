"""Import checkpoints: the newest source timestamp stored per series, written in the same transaction."""

from __future__ import annotations

import psycopg

# A series already known moves on to the newer timestamp and adds its rows.
_UPSERT = (
    "INSERT INTO import_checkpoints (source, series, last_ts, rows) {values} "
    "ON CONFLICT (source, series) DO UPDATE SET last_ts = EXCLUDED.last_ts, "
    "rows = import_checkpoints.rows + EXCLUDED.rows, updated_at = now()"
)
_UPSERT_ONE = _UPSERT.format(values="VALUES (%s, %s, %s, %s)")
_UPSERT_MANY = _UPSERT.format(values="SELECT %s, * FROM unnest(%s::text[], %s::int8[], %s::int8[])")


def load(conn: psycopg.Connection, source: str) -> dict[str, int]:
    """Every series of ``source`` already imported, with its last source timestamp (ms)."""
    found = conn.execute("SELECT series, last_ts FROM import_checkpoints WHERE source = %s", (source,))
    return {series: int(last) for series, last in found.fetchall()}


def advance(conn: psycopg.Connection, source: str, series: str, last_ts: int, rows: int) -> None:
    """Record that ``series`` is imported up to ``last_ts`` (call inside the transaction that wrote it)."""
    conn.execute(_UPSERT_ONE, (source, series, last_ts, rows))


def advance_many(conn: psycopg.Connection, source: str, done: list[tuple[str, int, int]]) -> None:
    """``advance`` for several (series, last_ts, rows) at once, in one statement."""
    names, lasts, counts = ([row[i] for row in done] for i in range(3))
    conn.execute(_UPSERT_MANY, (source, names, lasts, counts))
