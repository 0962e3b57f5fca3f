"""Telemetry retention on plain PostgreSQL (TimescaleDB has its own policy, set by migration 0002)."""

from __future__ import annotations

import logging

from sqlalchemy import Engine, text

from workbench.db.engine import has_timescale
from workbench.periodic import Periodic

log = logging.getLogger(__name__)

# Deleting in slices keeps each transaction short, so ingest's COPY never waits long on it.
SLICE_ROWS = 50_000


def drop_expired(engine: Engine, keep: str) -> int:
    """Delete raw telemetry older than ``keep`` (a PostgreSQL interval); returns the rows deleted."""
    deleted = 0
    while True:
        with engine.begin() as conn:
            count = conn.execute(
                text(
                    "DELETE FROM telemetry WHERE ctid = ANY(ARRAY(SELECT ctid FROM telemetry "
                    "WHERE timestamp < now() - CAST(:keep AS interval) LIMIT :slice))"
                ),
                {"keep": keep, "slice": SLICE_ROWS},
            ).rowcount
        deleted += count
        if count < SLICE_ROWS:
            return deleted


class RetentionJob:
    """Applies ``WORKBENCH_TELEMETRY_RETENTION`` every ``interval_seconds`` on plain PostgreSQL."""

    def __init__(self, engine: Engine, keep: str | None, interval_seconds: float = 3600.0) -> None:
        self.engine = engine
        self.keep = keep
        self.interval_seconds = interval_seconds
        self._periodic = Periodic("retention", interval_seconds, self.run_once, run_first=True)

    def start(self) -> RetentionJob:
        """Run now and then periodically, unless retention is unset or TimescaleDB handles it."""
        if self.keep and not has_timescale(self.engine):
            self._periodic.start()
        return self

    def stop(self) -> None:
        """Stop the periodic run."""
        self._periodic.stop()

    @property
    def running(self) -> bool:
        """Whether the periodic run is active."""
        return self._periodic.alive

    def run_once(self) -> int:
        """Delete what is past retention now; how many rows."""
        assert self.keep is not None
        deleted = drop_expired(self.engine, self.keep)
        if deleted:
            log.info("retention: deleted %d telemetry rows older than %s", deleted, self.keep)
        return deleted
