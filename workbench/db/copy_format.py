"""PostgreSQL's binary COPY format, once: its framing, its epoch, and reading a COPY TO STDOUT whole.

Ingest writes telemetry with it (``ingest.copy_binary``), the rule engine reads window aggregates with it
(``workbench.rules.store``), and the notebook helper library decodes the same timestamps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # notebook kernels import this module: keep SQLAlchemy out of their start-up
    from sqlalchemy import Engine

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
# The header a writer sends: the signature, a flags field and a header-extension length (both zero).
HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"  # a field count of -1
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PG_EPOCH_US = 946_684_800_000_000  # PG_EPOCH in microseconds since 1970-01-01


def copy_out(engine: Engine, statement: str, params: Any = None) -> bytes:
    """The whole output of a ``COPY ... TO STDOUT`` statement run on one of the engine's connections."""
    raw = engine.raw_connection()
    try:
        conn: Any = raw.driver_connection  # psycopg's Connection (COPY is not in the DB-API)
        with conn.cursor() as cursor, cursor.copy(statement, params) as copy:
            return b"".join(bytes(block) for block in copy)
    finally:
        raw.close()


def tuples(data: bytes) -> bytes:
    """The tuples of a binary COPY stream: without its header (and header extension) and trailer."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a binary COPY stream")
    extension = int.from_bytes(data[15:19], "big")
    return data[19 + extension : -len(TRAILER)]
