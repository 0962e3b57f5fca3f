"""`workbench demo` end to end: one command, live data within a minute, a first alert within two."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import text

from tests.conftest import ROOT, _with_database, free_port
from workbench.db.embedded import ensure_database
from workbench.db.engine import libpq_url, make_engine


@pytest.mark.slow
def test_demo_brings_live_data_within_a_minute_and_an_alert_within_two(
    postgres_server_url: str, tmp_path: Path
) -> None:
    name = f"wb_demo_{uuid.uuid4().hex[:10]}"
    ensure_database(postgres_server_url, name)
    url = _with_database(postgres_server_url, name)
    env = {
        **os.environ,
        "WORKBENCH_DATABASE_URL": url,
        "WORKBENCH_DATA_DIR": str(tmp_path / "var"),
        "WORKBENCH_PORT": str(free_port()),
        "WORKBENCH_MQTT_PORT": str(free_port()),
        "WORKBENCH_LOG_LEVEL": "WARNING",
    }
    env.pop("WORKBENCH_MQTT_URL", None)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    everything: list[str] = []
    threading.Thread(
        target=lambda: [(lines.put(line), everything.append(line)) for line in process.stderr or []],
        daemon=True,
    ).start()
    engine = make_engine(url, pool_size=1)
    try:
        serving = login = None
        while (serving is None or login is None) and time.monotonic() - started < 60:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert process.poll() is None, "demo exited early"
                continue
            serving = serving or re.search(r"demo serving on (http://\S+)", line)
            login = login or re.search(r"log in as (\S+) with password (\S+)", line)
        assert serving and login, "demo did not print its URL and login within a minute"

        def live_protocols() -> set[str]:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT DISTINCT d.protocol FROM telemetry t JOIN devices d ON d.id = t.device_id "
                        "WHERE t.timestamp > now() - interval '30 seconds'"
                    )
                ).scalars()
                return set(rows)

        protocols: set[str] = set()
        while time.monotonic() - started < 60 and len(protocols) < 5:
            protocols = live_protocols()
            time.sleep(1)
        live_after = time.monotonic() - started
        assert protocols == {"mqtt", "sparkplug", "http", "modbus", "opcua"}, protocols
        assert live_after < 60

        response = requests.post(
            f"{serving.group(1)}/api/v1/auth/login",
            json={"email": login.group(1), "password": login.group(2)},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        with engine.connect() as conn:  # the Sparkplug gateway is online since its birth
            gateway = conn.execute(
                text("SELECT status, last_seen FROM devices WHERE name = 'demo-plant/edge-1'")
            ).one()
        assert gateway.status == "online" and gateway.last_seen is not None, gateway

        alert = None
        while alert is None and time.monotonic() - started < 120:
            with engine.connect() as conn:
                alert = conn.execute(text("SELECT severity, message FROM alerts LIMIT 1")).first()
            time.sleep(1)
        assert alert is not None, "no alert within two minutes"
        with engine.connect() as conn:
            counts = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM rules WHERE name LIKE 'Demo:%'),"
                    " (SELECT count(*) FROM dashboards WHERE name LIKE 'Demo:%'),"
                    " (SELECT count(*) FROM report_schedules WHERE name LIKE 'Demo:%')"
                )
            ).one()
        assert counts[0] >= 4 and counts[1] == 2 and counts[2] == 1

        report = None  # the scheduled report also runs once right after the start
        while (report is None or report.status in ("queued", "running")) and time.monotonic() - started < 240:
            with engine.connect() as conn:
                report = conn.execute(
                    text("SELECT status, error, format FROM reports WHERE schedule_id IS NOT NULL LIMIT 1")
                ).first()
            time.sleep(1)
        assert report is not None and report.status == "done" and report.format == "pdf", report
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        engine.dispose()
        time.sleep(0.2)
        with psycopg.connect(libpq_url(postgres_server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    output = "".join(everything)
    assert "Traceback" not in output and " ERROR " not in output, output  # a normal start and stop


def test_demo_dashboards_are_laid_out_on_the_builder_grid() -> None:
    from ingest.simulator.demo import demo_dashboards, two_columns
    from workbench.ui.dashboards_db import ordered, split

    ids = {name: uuid.uuid4() for name in ("pump-1", "pump-2", "tank-1", "valve-3")}
    for board in demo_dashboards(ids):
        widgets, layout = split(two_columns(board["widgets"]))
        shown = ordered({"widgets": widgets, "layout": layout})
        places = [(w["x"], w["y"], w["w"]) for w in shown]
        assert places == [((i % 2) * 6, (i // 2) * 7, 6) for i in range(len(widgets))]
        assert [w["id"] for w in shown] == [w["id"] for w in board["widgets"]]
