"""The ThingsBoard history import's COPY pipe (bytes unchanged, errors raised, connection kept) and slices."""

from __future__ import annotations

import itertools
import uuid

import psycopg
import pytest

from ingest.importers import thingsboard_history as history
from workbench.db.copy_format import SIGNATURE
from workbench.db.engine import libpq_url


def test_pipe_hands_on_the_whole_stream_in_large_blocks(database_url: str) -> None:
    blocks: list[bytes] = []
    query = b"COPY (SELECT i, repeat('x', 100) FROM generate_series(1, 30000) AS i) TO STDOUT (FORMAT BINARY)"
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        history.pipe(conn, query, lambda block: blocks.append(bytes(block)))
        with conn.cursor().copy(query.decode()) as copy:
            expected = b"".join(bytes(block) for block in copy)
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert b"".join(blocks) == expected and expected.startswith(SIGNATURE)
    assert len(blocks) >= 3 and all(len(block) >= history.BLOCK_BYTES for block in blocks[:-1])


def test_a_failing_source_raises_its_error_and_the_connection_stays_usable(database_url: str) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            history.pipe(conn, b"COPY (SELECT * FROM no_such_table) TO STDOUT", lambda block: None)
        with pytest.raises(psycopg.errors.DivisionByZero):
            history.pipe(
                conn,
                b"COPY (SELECT 1 / (30000 - i) FROM generate_series(1, 30000) AS i) TO STDOUT",
                lambda block: None,
            )
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_a_failing_writer_stops_the_source_and_the_connection_stays_usable(database_url: str) -> None:
    def refuse(block: bytearray) -> None:
        raise OSError("target gone")

    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        with pytest.raises(OSError, match="target gone"):
            history.pipe(
                conn, b"COPY (SELECT generate_series(1, 10000000)) TO STDOUT (FORMAT BINARY)", refuse
            )
        assert conn.execute("SELECT 3").fetchone() == (3,)


def test_slices_cover_every_piece_once_and_follow_the_density() -> None:
    series = [
        history.Series(uuid.uuid4(), key_id, f"k{key_id}", rows, first, last)
        for key_id, rows, first, last in ((1, 1000, 1, 1000), (2, 10, 500, 1400), (3, 1, 2000, 2000))
    ]
    pieces = history.remaining(series, {series[0].name: 600})
    assert [(p.after, p.upto, p.rows) for p in pieces] == [(600, 1000, 400), (499, 1400, 10), (1999, 2000, 1)]
    slices = history.Slices(pieces, chunk_rows=100)
    covered: dict[str, list[tuple[int, int]]] = {}
    sizes = []
    for chunk in slices:
        sizes.append(sum(p.rows for p in chunk))
        for piece in chunk:
            covered.setdefault(piece.series.key, []).append((piece.after, piece.upto))
        slices.copied(sum(p.rows for p in chunk))
    for piece in pieces:
        spans = covered[piece.series.key]
        assert spans[0][0] == piece.after and spans[-1][1] == piece.upto
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(50 <= size <= 200 for size in sizes[:-1])  # about 100 rows each, by the estimate
