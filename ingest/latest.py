"""The newest value per series: upserted with a batch when due, otherwise held for a later batch.

Upserting ``latest_values`` rewrites a row per series, which cost a fifth of the telemetry COPY when every
batch did it. Under load the writers therefore upsert at most every ``LATEST_EVERY`` seconds, one writer
at a time, taking the rows the others held back. A batch that empties the queue, or that brings a series
this process has not upserted yet, upserts in its own transaction, so an idle platform's latest values are
as current as its telemetry (an HTTP client reading them after its POST sees its point).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ingest.validation import Row

LATEST_EVERY = 0.5
# Series whose latest value this process has upserted; beyond this many the set starts again.
MAX_KNOWN_SERIES = 200_000

Series = tuple[str, str]

# Through a per-connection staging table filled by binary COPY (arrays of parameters cost more to build
# in Python than the whole telemetry COPY).
CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS latest_stage (device_id uuid, key varchar, unit varchar,
    timestamp timestamptz, value float8, quality int4, metadata bytea, text_value text) ON COMMIT DELETE ROWS
"""
UPSERT = """
INSERT INTO latest_values (device_id, key, timestamp, value, unit, quality, text_value)
SELECT u.device_id, u.key, u.timestamp, u.value, u.unit, u.quality, u.text_value FROM latest_stage u
JOIN devices d ON d.id = u.device_id
ORDER BY u.device_id, u.key
ON CONFLICT (device_id, key) DO UPDATE SET timestamp = EXCLUDED.timestamp, value = EXCLUDED.value,
    unit = EXCLUDED.unit, quality = EXCLUDED.quality, text_value = EXCLUDED.text_value
WHERE latest_values.timestamp <= EXCLUDED.timestamp
"""
# At start, series whose newest telemetry is newer than their latest value (an upsert held back when the
# last process died) take it from telemetry: one index probe per series.
REPAIR = """
UPDATE latest_values lv SET timestamp = n.timestamp, value = n.value, unit = n.unit, quality = n.quality,
    text_value = n.text_value
FROM latest_values o CROSS JOIN LATERAL (
    SELECT t.timestamp, t.value, t.unit, t.quality, t.text_value FROM telemetry t
    WHERE t.device_id = o.device_id AND t.key = o.key ORDER BY t.timestamp DESC LIMIT 1) n
WHERE lv.device_id = o.device_id AND lv.key = o.key AND n.timestamp > o.timestamp
"""


def newest(rows: Iterable[Row]) -> dict[Series, Row]:
    """The newest of ``rows`` per series (ties: the later row)."""
    return merge({}, rows)


def merge(latest: dict[Series, Row], rows: Iterable[Row]) -> dict[Series, Row]:
    """``latest`` updated in place with the newest of ``rows`` per series (ties: the later row)."""
    for row in rows:
        series = (row[8], row[2])
        held = latest.get(series)
        if held is None or held[0] <= row[0]:
            latest[series] = row
    return latest


@dataclass
class Claim:
    """A writer's right to upsert ``rows`` in its transaction; ``taken`` came from other writers."""

    rows: dict[Series, Row]
    taken: dict[Series, Row]


class LatestValues:
    """Decides which batch upserts the latest values, and holds the rows of the others meanwhile."""

    def __init__(self) -> None:
        self._held: dict[Series, Row] = {}  # committed rows not yet upserted
        self._known: set[Series] = set()
        self._at = 0.0  # monotonic time of the last upsert
        self._mutex = threading.Lock()
        self._owner = threading.Lock()  # one writer upserts at a time (no row-lock waits between them)

    @property
    def held(self) -> bool:
        """Whether committed rows wait for an upsert."""
        return bool(self._held)

    @property
    def overdue(self) -> bool:
        """Whether held rows have waited ``LATEST_EVERY`` (an idle writer should upsert them)."""
        return bool(self._held) and time.monotonic() - self._at >= LATEST_EVERY

    def claim(self, mine: dict[Series, Row], urgent: bool) -> Claim | None:
        """The rows a batch about to be written upserts with it, or None: then ``hold`` after commit.

        ``mine``: the ``newest`` of the batch's rows. ``urgent``: the queue is empty (or the writer is
        stopping), so nothing may be left behind.
        """
        first_seen = not self._known.issuperset(mine)
        if not (urgent or first_seen or time.monotonic() - self._at >= LATEST_EVERY):
            return None
        if not self._owner.acquire(blocking=urgent or first_seen):
            return None
        with self._mutex:
            taken, self._held = self._held, {}
        claim = Claim(merge(dict(taken), mine.values()) if taken else mine, taken)
        if not claim.rows:
            self._owner.release()
            return None
        return claim

    def settle(self, claim: Claim, committed: bool) -> None:
        """After the claiming transaction: mark its series current, or give back what it took."""
        try:
            if committed:
                if len(self._known) > MAX_KNOWN_SERIES:
                    self._known.clear()
                self._known.update(claim.rows)
                self._at = time.monotonic()
            elif claim.taken:
                self.hold(claim.taken)
        finally:
            self._owner.release()

    def hold(self, rows: dict[Series, Row]) -> None:
        """Keep committed rows (a ``newest`` map) for a later upsert."""
        if rows:
            with self._mutex:
                merge(self._held, rows.values())
