"""The newest row per series, as the latest-values upsert takes it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from ingest.latest import merge, newest
from ingest.validation import Row

START = datetime(2026, 1, 1, tzinfo=UTC)
DEVICE = uuid.uuid4()


def row(key: str, seconds: int, value: float) -> Row:
    return (START + timedelta(seconds=seconds), DEVICE, key, value, None, 192, None, None, str(DEVICE))


def test_in_time_order_the_last_row_of_each_series_wins_and_ties_go_to_the_later() -> None:
    rows = [row("a", 1, 1.0), row("b", 1, 2.0), row("a", 2, 3.0), row("a", 2, 4.0), row("b", 3, 5.0)]
    found = newest(rows)
    assert {key: r[3] for (_, key), r in found.items()} == {"a": 4.0, "b": 5.0}


def test_out_of_order_rows_keep_the_newest_not_the_last() -> None:
    rows = [row("a", 5, 1.0), row("a", 1, 2.0), row("b", 2, 3.0), row("b", 4, 4.0), row("b", 3, 5.0)]
    found = newest(rows)
    assert {key: r[3] for (_, key), r in found.items()} == {"a": 1.0, "b": 4.0}


def test_merge_keeps_a_held_newer_row() -> None:
    held = newest([row("a", 9, 1.0)])
    merge(held, newest([row("a", 3, 2.0), row("b", 3, 3.0)]).values())
    assert {key: r[3] for (_, key), r in held.items()} == {"a": 1.0, "b": 3.0}
