"""``workbench import thingsboard``: run the ThingsBoard importers with a progress bar, then fix rollups."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from ingest.importers.thingsboard import Summary, ThingsBoardImport
from ingest.importers.thingsboard_json import import_file
from workbench.db.engine import libpq_url, make_engine
from workbench.db.rollups import rebuild


def import_thingsboard(
    target_url: str, database: str | None = None, files: tuple[Path, ...] = (), device: str | None = None
) -> Summary:
    """Import from a ThingsBoard database and/or REST JSON files (for ``device``); rollups cover the range."""
    summary = Summary()
    spans: list[tuple[int, int]] = []
    if database:
        bars: list[tqdm] = []

        def start(total: int) -> Callable[[int], object]:
            bar = tqdm(total=total, unit="rows", unit_scale=True, desc="telemetry", dynamic_ncols=True)
            bars.append(bar)
            return bar.update

        job = ThingsBoardImport(libpq_url(database), libpq_url(target_url))
        job.summary = summary
        try:
            job.run(start)
        finally:
            for bar in bars:
                bar.close()
        if job.imported_span is not None:
            spans.append(job.imported_span)
    if files and not device:
        raise ValueError("JSON files need --device (the device's name or id)")
    for path in files:
        span = import_file(libpq_url(target_url), path, device or "", summary)
        if span:
            spans.append(span)
    if spans:
        engine = make_engine(target_url, pool_size=1)
        try:
            start_at = datetime.fromtimestamp(min(s[0] for s in spans) / 1000, UTC)
            end_at = datetime.fromtimestamp(max(s[1] for s in spans) / 1000, UTC) + timedelta(hours=1)
            rebuild(engine, start_at, end_at)
        finally:
            engine.dispose()
    return summary
