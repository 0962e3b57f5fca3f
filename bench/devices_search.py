"""The devices page's search over 10,000 devices: the service function, the REST endpoint, the Dash callback.

Run: ``.venv/bin/python bench/devices_search.py`` (the machine's PostgreSQL at 127.0.0.1:5432 unless
``--server`` names another; 10,000 devices and 600 open alerts are generated once into the
``workbench_bench_devices`` database and reused). Each query is a different search text (a name fragment,
an area, nothing), filter and sort column, run through ``workbench.devices.search`` (the rule), through
``GET /api/v1/devices`` with an engineer's token, and through the page's list callback with an engineer's
UI session (what the browser runs on each keystroke). Prints p50/p99 per path and the load average.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from bench.api import bench_database, percentile
from workbench import devices as service
from workbench.auth import access, tokens
from workbench.auth.guard import SESSION_KEY
from workbench.auth.principal import Principal
from workbench.auth.users import create_user
from workbench.platform import EXTENSION, Platform
from workbench.settings import Settings

DEVICES = 10_000
TARGET_P99_MS = 300.0
TYPES = ("pump", "valve", "boiler", "meter", "compressor", "tank")
PROTOCOLS = ("mqtt", "modbus", "opcua", "sparkplug", "http")


def load(engine: Engine) -> None:
    """Generate the devices and open alerts unless they are already there."""
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM devices")).scalar_one()
    if have >= DEVICES:
        print(f"data: reusing {have} devices")
        return
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO devices (name, type, area, location, protocol, status, last_seen) "
                "SELECT 'DEV-' || lpad(n::text, 5, '0') || ' ' || (CAST(:types AS text[]))[1 + n % 6], "
                "(CAST(:types AS text[]))[1 + n % 6], 'Area ' || (n % 40), 'Hall ' || (n % 7), "
                "(CAST(:protocols AS text[]))[1 + n % 5], (ARRAY['online','offline','error'])[1 + n % 3], "
                "now() - n * interval '1 minute' FROM generate_series(1, :n) n"
            ),
            {"n": DEVICES, "types": list(TYPES), "protocols": list(PROTOCOLS)},
        )
        conn.execute(
            text(
                "INSERT INTO alerts (device_id, severity, status, message) "
                "SELECT id, (ARRAY['info','warning','critical'])[1 + (row_number() OVER ()) % 3], "
                "'active', 'bench' FROM (SELECT id FROM devices ORDER BY random() LIMIT 600) d"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE devices"))
        conn.execute(text("VACUUM ANALYZE alerts"))
    print(f"data: {DEVICES} devices, 600 open alerts")


def queries(count: int) -> list[dict[str, Any]]:
    """Varied searches: name fragments, numbers, areas, filters and every sort column, both directions."""
    rng = random.Random(7)
    made = []
    for index in range(count):
        search = rng.choice(["", f"{rng.randint(0, 9999):04d}"[:3], rng.choice(TYPES), "Hall 3", "dev-0"])
        filters = {"search": search}
        if index % 3 == 0:
            filters["area"] = f"Area {rng.randint(0, 39)}"
        if index % 4 == 1:
            filters["protocol"] = rng.choice(PROTOCOLS)
        sort = service.SORTS[index % len(service.SORTS)]
        made.append({"filters": filters, "sort": sort, "descending": index % 2 == 1, "page": 1 + index % 5})
    return made


def timed(calls: list[Callable[[], Any]]) -> list[float]:
    """Milliseconds of each call, after three warm-up calls."""
    for call in calls[:3]:
        call()
    times = []
    for call in calls:
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return times


def main() -> None:
    """Load (once), then time the search three ways and print p50/p99 against the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="workbench_bench_devices")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    url, engine = bench_database(args.server, args.database)
    load(engine)
    settings = Settings.from_env({}, database_url=url, data_dir=Path(tempfile.mkdtemp(prefix="wb-bench-")))
    app = create_app(settings)
    platform: Platform = app.extensions[EXTENSION]
    email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
    user_id = create_user(engine, email, "engineer", "bench password")
    caller = Principal(kind="user", id=user_id, role="engineer", email=email)
    token = tokens.issue(app.config["SECRET_KEY"], user_id, "engineer", email)
    api = app.test_client()
    ui = app.test_client()
    with ui.session_transaction() as session:
        session[SESSION_KEY] = access.start_session(engine, access.ActiveUser(user_id, email, "engineer", 0))
    cases = queries(args.runs)

    def by_service(case: dict[str, Any]) -> Callable[[], Any]:
        return lambda: service.search(
            platform, caller, case["filters"], case["sort"], case["descending"], case["page"], 25
        )

    def by_api(case: dict[str, Any]) -> Callable[[], Any]:
        query = {**case["filters"], "sort": case["sort"], "page": case["page"], "page_size": 25}
        query["descending"] = str(case["descending"]).lower()
        headers = {"Authorization": f"Bearer {token}"}

        def call() -> None:
            response = api.get("/api/v1/devices", query_string=query, headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)

        return call

    def by_callback(case: dict[str, Any]) -> Callable[[], Any]:
        filters = case["filters"]
        prop = lambda ident, name, value: {"id": ident, "property": name, "value": value}  # noqa: E731
        body = {
            "output": "..dev-list.children...dev-pager.children...dev-view.data..",
            "outputs": [
                {"id": "dev-list", "property": "children"},
                {"id": "dev-pager", "property": "children"},
                {"id": "dev-view", "property": "data"},
            ],
            "inputs": [
                prop("dev-search", "value", filters["search"]),
                *[prop(f"dev-filter-{name}", "value", filters.get(name, "")) for name in service.FILTERS],
                [],
                prop("dev-prev", "n_clicks", None),
                prop("dev-next", "n_clicks", None),
                prop("dev-refresh", "data", 0),
            ],
            "changedPropIds": ["dev-refresh.data"],
            "state": [prop("dev-view", "data", {k: case[k] for k in ("page", "sort", "descending")})],
        }

        def call() -> None:
            response = ui.post("/ui/_dash-update-component", json=body)
            assert response.status_code == 200, response.get_data(as_text=True)[:300]

        return call

    total = service.search(platform, caller)["total"]
    print(f"devices: {total}, queries per path: {len(cases)}")
    failed = False
    for label, make in (("service", by_service), ("REST", by_api), ("Dash callback", by_callback)):
        times = timed([make(case) for case in cases])
        p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
        load1, load5, _ = os.getloadavg()
        verdict = "ok" if p99 < TARGET_P99_MS else "OVER"
        failed |= p99 >= TARGET_P99_MS
        print(
            f"{label:>14}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  (target p99 < {TARGET_P99_MS:.0f}) {verdict}"
            f"  load average {load1:.2f} {load5:.2f}"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
