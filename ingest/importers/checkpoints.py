"""Import checkpoints: the newest source timestamp stored per series, written in the same transaction."""

from __future__ import annotations

import psycopg

UPSERT = (
    "INSERT INTO import_checkpoints (source, series, last_ts, rows) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (source, series) DO UPDATE SET last_ts = EXCLUDED.last_ts, "
    "rows = import_checkpoints.rows + EXCLUDED.rows, updated_at = now()"
)


def load(conn: psycopg.Connection, source: str) -> dict[str, int]:
    """Every series of ``source`` already imported, with its last source timestamp (ms)."""
    found = conn.execute("SELECT series, last_ts FROM import_checkpoints WHERE source = %s", (source,))
    return {series: int(last) for series, last in found.fetchall()}


def advance(conn: psycopg.Connection, source: str, series: str, last_ts: int, rows: int) -> None:
    """Record that ``series`` is imported up to ``last_ts`` (call inside the transaction that wrote it)."""
    conn.execute(UPSERT, (source, series, last_ts, rows))


def advance_many(conn: psycopg.Connection, source: str, done: list[tuple[str, int, int]]) -> None:
    """``advance`` for several (series, last_ts, rows) at once, in one statement."""
    names, lasts, counts = (list(column) for column in zip(*done, strict=True)) if done else ([], [], [])
    conn.execute(
        "INSERT INTO import_checkpoints (source, series, last_ts, rows) "
        "SELECT %s, * FROM unnest(%s::text[], %s::int8[], %s::int8[]) "
        "ON CONFLICT (source, series) DO UPDATE SET last_ts = EXCLUDED.last_ts, "
        "rows = import_checkpoints.rows + EXCLUDED.rows, updated_at = now()",
        (source, names, lasts, counts),
    )
