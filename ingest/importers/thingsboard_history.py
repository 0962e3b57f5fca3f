"""ThingsBoard ``ts_kv`` history into ``telemetry``: which series to copy, in which chunks, and the copy.

A chunk is one binary COPY out of ThingsBoard's database piped into one binary COPY into ``telemetry``,
committed together with the checkpoints of every series it holds. Chunks are time slices across all series
(``Slices``), so each reads one stretch of ``ts_kv``. The source query already gives the workbench's column
types (the timestamp leaves as the int8 microseconds since 2000 that are a ``timestamptz``'s binary form),
so no row is decoded in Python: rows are read with libpq's own ``PQgetCopyData`` and written on in blocks
of about a megabyte by a thread of their own. Within a chunk each series' rows arrive newest first, the
order of ``telemetry``'s (device, key, timestamp DESC) index, which keeps that index compact and its
inserts cheap.
"""

from __future__ import annotations

import select
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import errors, sql
from psycopg.copy import QueuedLibpqWriter
from psycopg.pq import ExecStatus

from ingest.importers import checkpoints
from workbench.db.copy_format import PG_EPOCH_US

KEY_MAX = 100  # telemetry.key is varchar(100)
BLOCK_BYTES = 1 << 20  # bytes gathered from the source before one write to the target
BEFORE_ALL = -(2**63)  # the checkpoint of a series nothing of which is imported yet

# One expression per workbench column over a ts_kv row ``t`` and its series ``s`` (see copy_chunk).
_VALUE = (
    "COALESCE(t.dbl_v, t.long_v::float8, "
    "CASE WHEN t.bool_v THEN 1.0::float8 WHEN NOT t.bool_v THEN 0.0::float8 END)"
)
# A long beyond 2^53 keeps its exact digits (BETWEEN, not abs(): abs(-2^63) overflows bigint).
_TEXT = (
    "COALESCE(t.str_v, {json}, "
    "CASE WHEN t.long_v NOT BETWEEN -9007199254740992 AND 9007199254740992 THEN t.long_v::text END)"
)
_COPY_OUT = (
    f"COPY (SELECT t.ts * 1000 - {PG_EPOCH_US}, t.entity_id, s.name, {_VALUE}, 100::int4, "
    "{text} FROM unnest({entities}::uuid[], {keys}::int4[], {names}::text[], {after}::int8[], "
    "{upto}::int8[]) WITH ORDINALITY AS s(entity_id, key_id, name, after, upto, n) "
    "CROSS JOIN LATERAL (SELECT * FROM ts_kv WHERE ts_kv.entity_id = s.entity_id AND ts_kv.key = s.key_id "
    "AND ts_kv.ts > s.after AND ts_kv.ts <= s.upto ORDER BY ts_kv.ts DESC) AS t) "
    "TO STDOUT (FORMAT BINARY)"
)
_COPY_IN = "COPY telemetry (timestamp, device_id, key, value, quality, text_value) FROM STDIN (FORMAT BINARY)"


@dataclass(frozen=True)
class Series:
    """One ``ts_kv`` series (a device's key): its rows and first and last timestamps (ms) when listed."""

    entity_id: uuid.UUID
    key_id: int
    key: str
    rows: int
    first: int
    last: int

    @property
    def name(self) -> str:
        """The series' checkpoint name."""
        return f"{self.entity_id}/{self.key}"


@dataclass(frozen=True)
class Piece:
    """The rows of one series with ``after < ts <= upto`` (ms), about ``rows`` of them."""

    series: Series
    after: int
    upto: int
    rows: int


def find_series(src: psycopg.Connection, devices: set[uuid.UUID], skipped: Counter[str]) -> list[Series]:
    """Every device series of ``ts_kv`` in (entity, key) order; what is left out is counted in ``skipped``."""
    names: dict[int, str] = dict(src.execute("SELECT key_id, key FROM ts_kv_dictionary").fetchall())
    found: list[Series] = []
    counts = src.execute(
        "SELECT entity_id, key, count(*), min(ts), max(ts) FROM ts_kv GROUP BY entity_id, key ORDER BY 1, 2"
    )
    for entity_id, key_id, rows, first, last in counts.fetchall():
        key = names.get(key_id)
        if entity_id not in devices:
            skipped["telemetry of an entity that is not a device (asset, customer…)"] += rows
        elif key is None:
            skipped["key id missing from ts_kv_dictionary"] += rows
        elif len(key) > KEY_MAX:
            skipped[f"key longer than {KEY_MAX} characters"] += rows
        else:
            found.append(Series(entity_id, key_id, key, rows, first, last))
    return found


def remaining(series: list[Series], done: dict[str, int]) -> list[Piece]:
    """What is left of each series past its checkpoint, as one piece each (fully imported series drop out).

    A series resumed mid-way is assumed evenly spread in time for its row estimate (progress and chunk
    sizes only: the rows copied are counted by the COPY).
    """
    left: list[Piece] = []
    for one in series:
        after = max(done.get(one.name, BEFORE_ALL), one.first - 1)
        if after >= one.last:
            continue
        share = (one.last - after) / (one.last - one.first + 1)
        left.append(Piece(one, after, one.last, max(1, round(one.rows * share))))
    return left


class Slices:
    """The remaining pieces cut into time slices ``(start, end]`` across all series, of about ``chunk_rows``.

    A slice holds every series' rows in its span, so it reads one stretch of ThingsBoard's table (rows are
    stored roughly in arrival order) rather than the whole table once per series. A slice's width is fitted
    to the rows estimated in it (each series taken as evenly spread) and follows the rows slices really
    held. A slice holds at least ``PER_SERIES`` rows per series on average, so a plant of many short
    series is not read one index probe per row.
    """

    PER_SERIES = 20

    def __init__(self, pieces: list[Piece], chunk_rows: int) -> None:
        self.pieces = pieces
        self.rows = max(chunk_rows, self.PER_SERIES * len(pieces))
        self.start = min((p.after for p in pieces), default=0)
        self.end = max((p.upto for p in pieces), default=0)
        total = sum(p.rows for p in pieces)
        self.width = max(1, (self.end - self.start) * self.rows // max(total, 1))

    def __iter__(self) -> Iterator[list[Piece]]:
        """Each slice's pieces in series order; call ``copied`` with its rows before taking the next."""
        while self.start < self.end:
            for _ in range(16):  # fit the width to the estimate: within half to twice the rows wanted
                end = min(self.start + self.width, self.end)
                chunk = self._slice(end)
                estimate = sum(p.rows for p in chunk)
                if estimate > 2 * self.rows and self.width > 1:
                    self.width //= 2
                elif estimate < self.rows // 2 and end < self.end:
                    self.width *= 2
                else:
                    break
            self.start = end
            if chunk:
                yield chunk

    def _slice(self, end: int) -> list[Piece]:
        return [
            Piece(p.series, max(p.after, self.start), min(p.upto, end), self._share(p, end))
            for p in self.pieces
            if p.after < end and p.upto > self.start
        ]

    def copied(self, rows: int) -> None:
        """Adapt the next slice's width to the rows the last one held (at most 4 times wider or narrower)."""
        factor = 4.0 if rows == 0 else min(4.0, max(0.25, self.rows / rows))
        self.width = max(1, int(self.width * factor))

    def _share(self, piece: Piece, end: int) -> int:
        lo, hi = max(piece.after, self.start), min(piece.upto, end)
        return round(piece.rows * (hi - lo) / (piece.upto - piece.after))


def copy_chunk(
    src: psycopg.Connection, dst: psycopg.Connection, chunk: list[Piece], source: str, json_v: bool
) -> int:
    """Copy one chunk and advance its series' checkpoints in the same transaction; returns the rows copied."""
    statement = sql.SQL(_COPY_OUT).format(
        text=sql.SQL(_TEXT.format(json="t.json_v::text" if json_v else "NULL::text")),
        entities=[p.series.entity_id for p in chunk],
        keys=[p.series.key_id for p in chunk],
        names=[p.series.key for p in chunk],
        after=[p.after for p in chunk],
        upto=[p.upto for p in chunk],
    )
    with dst.transaction(), src.transaction():
        # A crash may lose the newest chunks, never half of one: each commits with its checkpoints.
        dst.execute("SET LOCAL synchronous_commit = off")
        # Each series' rows newest first straight off its index (the planner, not knowing how many rows a
        # series holds, would otherwise fetch them as a bitmap and sort them: twice the work).
        src.execute("SET LOCAL enable_bitmapscan = off")
        src.execute("SET LOCAL enable_sort = off")
        with dst.cursor() as out:
            # The target is written from a thread of its own, so the source is read meanwhile.
            with out.copy(_COPY_IN, writer=QueuedLibpqWriter(out)) as writer:
                pipe(src, statement.as_bytes(src), writer.write)
            copied = out.rowcount
        # Rows per series are not counted here (the COPY counts the chunk): the checkpoints record 0.
        checkpoints.advance_many(dst, source, [(p.series.name, p.upto, 0) for p in chunk])
    return copied


def pipe(src: psycopg.Connection, statement: bytes, write: Callable[[bytearray], object]) -> None:
    """Run ``COPY ... TO STDOUT`` on ``src`` and hand its bytes to ``write`` in blocks of ``BLOCK_BYTES``.

    psycopg's ``Copy.read`` costs a generator round per row; libpq's ``PQgetCopyData`` does not. It is
    called without blocking and the wait for data is a ``select``, which lets a writer thread run meanwhile.
    """
    pgconn = src.pgconn
    pgconn.send_query(statement)
    _result(src, ExecStatus.COPY_OUT)
    block = bytearray()
    get, socket = pgconn.get_copy_data, pgconn.socket
    try:
        while True:
            size, data = get(1)
            if size > 0:
                block += data
                if len(block) >= BLOCK_BYTES:
                    write(block)
                    block = bytearray()
            elif size == 0:
                select.select([socket], [], [])
                pgconn.consume_input()
            else:
                break
    except BaseException:
        src.cancel_safe()  # stop the source and drain it, so its connection is usable (or closable) again
        while get(0)[0] >= 0:
            pass
        while pgconn.get_result() is not None:
            pass
        raise
    if size == -2:
        raise psycopg.OperationalError(pgconn.get_error_message())
    if block:
        write(block)
    _result(src, ExecStatus.COMMAND_OK)


def _result(src: psycopg.Connection, expected: ExecStatus) -> None:
    """Take the next result of ``src``'s running statement; a failure raises psycopg's error for it."""
    pgconn = src.pgconn
    result = pgconn.get_result()
    if result is not None and result.status == ExecStatus.COPY_OUT == expected:
        return  # libpq stays in COPY state: no further result until the data is read
    if result is not None and result.status == expected:
        while pgconn.get_result() is not None:  # the end of the statement, so the next one can be sent
            pass
        return
    while pgconn.get_result() is not None:  # drain so the connection is usable again
        pass
    if result is None:
        raise psycopg.OperationalError(pgconn.get_error_message() or "the source ended the COPY early")
    raise errors.error_from_result(result, encoding=src.info.encoding)
