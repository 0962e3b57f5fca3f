"""ThingsBoard import benchmark: rows/s moving ``ts_kv`` history into the workbench, on the embedded database.

    .venv/bin/python bench/import.py [--rows 10000000] [--database-url URL] [--json]

Builds a ThingsBoard database in ThingsBoard's layout (100 devices, 10 keys, double values) next to a fresh
workbench database on the same server (an embedded PostgreSQL in a temporary folder unless ``--database-url``
names one), then times ``workbench import thingsboard``'s history copy, a rerun (which adds nothing) and the
rollup rebuild. The machine may be shared, so every figure comes with the load average, and the same run
measures the database's own limit: one binary COPY of the same rows, in the importer's order, from a file
into the same (emptied) ``telemetry``, before and after the import; the import's ratio to it is the figure
that carries over between machines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy.engine import make_url

from ingest.importers.thingsboard import ThingsBoardImport
from ingest.importers.thingsboard_history import BLOCK_BYTES
from ingest.importers.thingsboard_layout import CURRENT
from workbench.db.copy_format import PG_EPOCH_US
from workbench.db.embedded import EmbeddedPostgres, ensure_database
from workbench.db.engine import libpq_url, make_engine
from workbench.db.migrate import upgrade
from workbench.db.rollups import rebuild

DEVICES = 100
KEYS = 10
BASE_MS = 1_700_000_000_000


def _database(server_url: str, name: str) -> str:
    ensure_database(server_url, name)
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _fill(url: str, rows: int) -> float:
    """Create the ThingsBoard tables and ``rows`` ts_kv rows; returns the seconds it took."""
    started = time.perf_counter()
    per_series = rows // (DEVICES * KEYS)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(CURRENT)
        conn.execute(
            "INSERT INTO device_profile (id, created_time, name, type) "
            "VALUES (gen_random_uuid(), 0, 'Pump', 'D')"
        )
        conn.execute(
            "INSERT INTO device (id, created_time, device_profile_id, name, type) "
            "SELECT gen_random_uuid(), 0, (SELECT id FROM device_profile), 'pump-' || i, 'default' "
            "FROM generate_series(1, %s) AS i",
            (DEVICES,),
        )
        conn.execute(
            "INSERT INTO ts_kv_dictionary (key, key_id) "
            "SELECT 'key_' || k, k FROM generate_series(1, %s) AS k",
            (KEYS,),
        )
        conn.execute(
            "INSERT INTO ts_kv (entity_id, key, ts, dbl_v) SELECT d.id, k, %s + i * 1000, random() * 100 "
            "FROM device d, generate_series(1, %s) AS k, generate_series(1, %s) AS i",
            (BASE_MS, KEYS, per_series),
        )
        conn.execute("VACUUM ANALYZE ts_kv")
    return time.perf_counter() - started


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _dump(url: str, path: Path) -> None:
    """The telemetry rows the importer writes, series by series and newest first, as a file."""
    query = (
        f"COPY (SELECT t.ts * 1000 - {PG_EPOCH_US}, t.entity_id, k.key::text, t.dbl_v, 100::int4, NULL::text "
        "FROM ts_kv t JOIN ts_kv_dictionary k ON k.key_id = t.key ORDER BY t.entity_id, t.key, t.ts DESC) "
        "TO STDOUT (FORMAT BINARY)"
    )
    with psycopg.connect(libpq_url(url)) as conn, conn.cursor().copy(query) as copy, path.open("wb") as out:
        for block in copy:
            out.write(block)


def _copy_limit(url: str, path: Path) -> dict[str, Any]:
    """Rows/s of one binary COPY of the dumped rows into the emptied telemetry (the database limit)."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("TRUNCATE telemetry")
        load = _load()
        started = time.perf_counter()
        with conn.cursor() as cursor:
            with (
                cursor.copy(
                    "COPY telemetry (timestamp, device_id, key, value, quality, text_value) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy,
                path.open("rb") as source,
            ):
                while block := source.read(BLOCK_BYTES):
                    copy.write(block)
            rows = cursor.rowcount
        seconds = time.perf_counter() - started
        conn.execute("TRUNCATE telemetry")
    return {"rows_per_s": round(rows / seconds), "seconds": round(seconds, 1), "load_average": load}


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: an embedded one)")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="workbench-bench-import-"))
    server = None
    server_url = args.database_url
    if not server_url:
        server = EmbeddedPostgres(folder / "postgres")
        server_url = server.start(database="postgres")
    tag = uuid.uuid4().hex[:8]
    source = _database(server_url, f"tb_bench_{tag}")
    target = _database(server_url, f"wb_bench_{tag}")
    try:
        upgrade(target)
        fill_s = _fill(source, args.rows)
        dump = folder / "rows.copy"
        _dump(source, dump)
        limit_before = _copy_limit(target, dump)
        import_load = _load()
        started = time.perf_counter()
        summary = ThingsBoardImport(libpq_url(source), libpq_url(target)).run()
        import_s = time.perf_counter() - started
        started = time.perf_counter()
        rerun = ThingsBoardImport(libpq_url(source), libpq_url(target)).run()
        rerun_s = time.perf_counter() - started
        engine = make_engine(target, pool_size=1)
        rollup_load = _load()
        started = time.perf_counter()
        start_at = datetime.fromtimestamp(BASE_MS / 1000, UTC)
        rebuild(engine, start_at, start_at + timedelta(milliseconds=args.rows * 1000 + 3_600_000))
        rollup_s = time.perf_counter() - started
        engine.dispose()
        limit_after = _copy_limit(target, dump)
        rate = round(summary.rows / import_s)
        figures = {
            "rows": summary.rows,
            "series": summary.series,
            "import_seconds": round(import_s, 1),
            "import_rows_per_s": rate,
            "import_load_average": import_load,
            "copy_limit_before": limit_before,
            "copy_limit_after": limit_after,
            # Against each limit apart (a shared machine's load can swing between them).
            "import_to_copy_limit": {
                "before": round(rate / limit_before["rows_per_s"], 2),
                "after": round(rate / limit_after["rows_per_s"], 2),
            },
            "rerun_rows": rerun.rows,
            "rerun_seconds": round(rerun_s, 1),
            "rollup_rebuild_seconds": round(rollup_s, 1),
            "rollup_load_average": rollup_load,
            "source_fill_seconds": round(fill_s, 1),
            "database": "embedded" if server else "given",
            "load_average_at_end": _load(),
        }
        if args.json:
            print(json.dumps(figures))
        else:
            for name, value in figures.items():
                print(f"{name:>24}: {value}")
    finally:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            for name in (f"tb_bench_{tag}", f"wb_bench_{tag}"):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if server:
            server.stop()


if __name__ == "__main__":
    main()
