"""API latency over 10 million stored points: latest values, a one-day aggregate, a one-year chart series.

Run: ``.venv/bin/python bench/api.py`` (uses the machine's PostgreSQL at 127.0.0.1:5432 unless
``--server`` names another; the data is generated once into the ``workbench_bench`` database and reused).

Data: 115 devices x one key x one day at 1 Hz (9.94 million rows, generated in SQL with generate_series),
plus one chart key holding a year at one point per minute (525,600 rows; a year at 1 Hz, 31.5 million
rows, is more than this machine's disk budget for a benchmark, so the chart case runs at the coarsest
honest resolution and says so). Requests go through the whole Flask app in process (auth, validation,
SQL, JSON), with an admin's bearer token.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from workbench.auth import tokens
from workbench.auth.users import create_user
from workbench.db.embedded import ensure_database
from workbench.db.engine import make_engine
from workbench.db.migrate import upgrade
from workbench.db.rollups import rebuild
from workbench.settings import Settings

DEVICES = 115
DAY = "2026-01-01T00:00:00Z"
YEAR_START = "2025-01-01T00:00:00Z"
TARGETS_MS = {
    "latest (100 devices)": 100.0,
    "aggregate (1 day, 1 min)": 300.0,
    "chart (1 year, 1000 pts)": 300.0,
}


def load(engine: Engine) -> None:
    """Generate the data set unless it is already there."""
    with engine.begin() as conn:
        have = conn.execute(text("SELECT count(*) FROM devices WHERE name LIKE 'bench-%'")).scalar_one()
    if have >= DEVICES + 1:
        print(f"data: reusing {have} bench devices")
        return
    began = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO devices (name, type, area, protocol, status) SELECT 'bench-' || n, 'sensor', "
                "'bench', 'mqtt', 'online' FROM generate_series(1, :n) n"
            ),
            {"n": DEVICES},
        )
        conn.execute(
            text("INSERT INTO devices (name, type, status) VALUES ('bench-chart', 'meter', 'online')")
        )
    with engine.connect() as conn:
        ids = conn.execute(
            text("SELECT id FROM devices WHERE name LIKE 'bench-%' AND name <> 'bench-chart' ORDER BY name")
        ).scalars()
        device_ids = list(ids)
    for index, device_id in enumerate(device_ids):
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO telemetry (timestamp, device_id, key, value, unit, quality) "
                    "SELECT t, :device, 'temperature', "
                    "20 + 5 * sin(extract(epoch FROM t) / 3600.0 + :phase) + random(), 'C', 100 "
                    "FROM generate_series(CAST(:day AS timestamptz), "
                    "CAST(:day AS timestamptz) + interval '1 day' - interval '1 second', "
                    "interval '1 second') t"
                ),
                {"device": device_id, "phase": index, "day": DAY},
            )
        if index % 20 == 0:
            print(
                f"data: {index + 1}/{len(device_ids)} devices, {time.perf_counter() - began:.0f} s",
                flush=True,
            )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO telemetry (timestamp, device_id, key, value, unit, quality) "
                "SELECT t, (SELECT id FROM devices WHERE name = 'bench-chart'), 'energy', "
                "100 + 30 * sin(extract(epoch FROM t) / 86400.0) + 10 * random(), 'kWh', 100 "
                "FROM generate_series(CAST(:start AS timestamptz), "
                "CAST(:start AS timestamptz) + interval '365 days' - interval '1 minute', "
                "interval '1 minute') t"
            ),
            {"start": YEAR_START},
        )
        conn.execute(
            text(
                "INSERT INTO latest_values (device_id, key, timestamp, value, unit, quality) "
                "SELECT DISTINCT ON (device_id, key) device_id, key, timestamp, value, unit, quality "
                "FROM telemetry ORDER BY device_id, key, timestamp DESC ON CONFLICT DO NOTHING"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE telemetry"))
        conn.execute(text("VACUUM ANALYZE latest_values"))
    print(f"data: loaded in {time.perf_counter() - began:.0f} s")


def roll_up(engine: Engine) -> None:
    """Build the minute/hour rollups once: SQL-generated rows bypass the ingest path that keeps them."""
    with engine.connect() as conn:
        if conn.execute(text("SELECT EXISTS (SELECT 1 FROM telemetry_1h)")).scalar_one():
            return
    began = time.perf_counter()
    rebuild(engine, datetime(2024, 12, 31, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE telemetry_1m"))
        conn.execute(text("VACUUM ANALYZE telemetry_1h"))
    print(f"data: rollups built in {time.perf_counter() - began:.0f} s")


def timed(call: Callable[[], int], runs: int) -> list[float]:
    """Milliseconds of ``runs`` calls after two warm-up calls; each call must answer 200."""
    for _ in range(2):
        assert call() == 200
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        status = call()
        times.append((time.perf_counter() - began) * 1000)
        assert status == 200, status
    return times


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def bench_database(server: str, database: str) -> tuple[str, Engine]:
    """The URL of ``database`` on ``server`` (created if missing, migrated) and an engine on it."""
    ensure_database(server, database)
    url = make_url(server).set(database=database).render_as_string(hide_password=False)
    upgrade(url)
    return url, make_engine(url)


def main() -> None:
    """Load (once), then time the three API calls and print p50/p99 against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="workbench_bench")
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    url, engine = bench_database(args.server, args.database)
    load(engine)
    roll_up(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM telemetry")).scalar_one()
        latest_ids = conn.execute(
            text(
                "SELECT id FROM devices WHERE name LIKE 'bench-%' AND name <> 'bench-chart' "
                "ORDER BY name LIMIT 100"
            )
        ).scalars()
        hundred = [str(i) for i in latest_ids]
        one = hundred[0]
        chart = conn.execute(text("SELECT id FROM devices WHERE name = 'bench-chart'")).scalar_one()
    print(f"data: {rows:,} telemetry rows")

    settings = Settings.from_env({}, database_url=url, data_dir=Path(tempfile.mkdtemp(prefix="wb-bench-")))
    app = create_app(settings)
    admin = create_user(engine, f"bench-{uuid.uuid4().hex[:6]}@example.com", "admin", "bench password")
    token = tokens.issue(app.config["SECRET_KEY"], admin, "admin", "bench@example.com")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def get(url: str) -> Callable[[], int]:
        return lambda: client.get(url, headers=headers).status_code

    latest = "/api/v1/telemetry/latest?" + "&".join(f"device_id={d}" for d in hundred)
    day_end = "2026-01-02T00:00:00Z"
    aggregate = (
        f"/api/v1/telemetry/aggregate?device_id={one}&keys=temperature&start={DAY}&end={day_end}"
        "&interval=1m&functions=avg"
    )
    year_end = "2026-01-01T00:00:00Z"
    series = (
        f"/api/v1/telemetry/downsample?device_id={chart}&key=energy&start={YEAR_START}&end={year_end}"
        "&points=1000"
    )
    check = client.get(latest, headers=headers).get_json()
    assert len(check["items"]) == 100, len(check["items"])
    assert len(client.get(aggregate, headers=headers).get_json()["items"]) == 1440
    assert len(client.get(series, headers=headers).get_json()["values"]) == 1000

    busy = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {busy[0]:.1f} (others' work shares the cores)")
    print(f"\n{'case':28} {'p50 ms':>8} {'p99 ms':>8} {'target p99':>11}  verdict")
    for name, url_, runs in (
        ("latest (100 devices)", latest, args.runs),
        ("aggregate (1 day, 1 min)", aggregate, args.runs),
        ("chart (1 year, 1000 pts)", series, max(20, args.runs // 2)),
    ):
        times = timed(get(url_), runs)
        p50, p99 = statistics.median(times), percentile(times, 0.99)
        target = TARGETS_MS[name]
        verdict = "ok" if p99 < target else "MISSED"
        print(f"{name:28} {p50:8.1f} {p99:8.1f} {target:9.0f} ms  {verdict} ({runs} runs)")
    engine.dispose()


if __name__ == "__main__":
    main()
