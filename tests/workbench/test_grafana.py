"""Grafana: the read-only login, and exported panels that give the chart endpoint's numbers when run as it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from tests.conftest import ROOT
from tests.workbench.api.fixtures import make_device
from workbench.db.engine import libpq_url
from workbench.db.reader import grant_reader
from workbench.db.rollups import rebuild
from workbench.db.tables import alerts, dashboards
from workbench.grafana import export
from workbench.platform import EXTENSION, Platform

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MINUTES = 10


@pytest.fixture
def reader_url(database_url: str) -> Iterator[str]:
    """A URL logging in as a fresh read-only role (dropped afterwards)."""
    role = f"reader_{uuid.uuid4().hex[:8]}"
    password = grant_reader(libpq_url(database_url), role)
    yield libpq_url(make_url(database_url).set(username=role, password=password).render_as_string(False))
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


def test_reader_reads_what_grafana_needs_and_writes_nothing(reader_url: str) -> None:
    with psycopg.connect(reader_url, autocommit=True) as conn:
        for table in ("telemetry", "telemetry_1m", "telemetry_1h", "latest_values", "alerts"):
            conn.execute(f"SELECT * FROM {table} LIMIT 1")
        conn.execute("SELECT id, name, status, last_seen FROM devices LIMIT 1")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute(
                "INSERT INTO telemetry (timestamp, device_id, key) VALUES (now(), gen_random_uuid(), 'x')"
            )
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
        for statement in (
            "INSERT INTO telemetry (timestamp, device_id, key) VALUES (now(), gen_random_uuid(), 'x')",
            "UPDATE devices SET name = 'x'",
            "DELETE FROM alerts",
            "SELECT * FROM users",
            "SELECT * FROM api_keys",
            "SELECT config FROM devices",
            "SELECT connection_string FROM devices",
            "CREATE TABLE grabbed (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def _expand(raw_sql: str, start: datetime, end: datetime, interval_s: int) -> str:
    """Grafana's PostgreSQL macros as Grafana expands them for a range and an interval."""
    between = f"BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"
    expanded = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 {between}", raw_sql)
    return re.sub(
        r"\$__timeGroupAlias\((\w+), \$__interval\)",
        rf'floor(extract(epoch from \1)/{interval_s})*{interval_s} AS "time"',
        expanded,
    )


@pytest.fixture
def plant_board(app: Flask) -> dict[str, Any]:
    """A device with ten minutes of two keys (rollups built), an open alert, a dashboard of each widget."""
    engine = _platform(app).engine
    device = make_device(app, f"grafana-{uuid.uuid4().hex[:6]}")
    with psycopg.connect(libpq_url(str(engine.url.render_as_string(False)))) as conn:
        with conn.cursor().copy("COPY telemetry (timestamp, device_id, key, value) FROM STDIN") as copy:
            for second in range(0, MINUTES * 60, 5):
                at = START + timedelta(seconds=second)
                copy.write_row((at, device.id, "flow", 10 + second % 7))
                copy.write_row((at, device.id, "pressure", 2 + (second % 11) / 10))
        conn.execute(
            "INSERT INTO latest_values (device_id, key, timestamp, value) VALUES (%s, 'flow', %s, 13.0)",
            (device.id, START + timedelta(minutes=MINUTES)),
        )
    rebuild(engine, START, START + timedelta(minutes=MINUTES))
    widgets = [
        {
            "id": "a1",
            "type": "line",
            "title": "Flow",
            "device_id": str(device.id),
            "keys": ["flow", "pressure"],
            "window": "15m",
            "aggregation": "avg",
        },
        {"id": "a2", "type": "gauge", "title": "Flow now", "device_id": str(device.id), "keys": ["flow"]},
        {"id": "a3", "type": "alerts", "title": "Alerts", "device_id": str(device.id)},
        {"id": "a4", "type": "status", "title": "Devices"},
        {"id": "a5", "type": "table", "title": "Latest", "device_id": str(device.id)},
    ]
    layout = {
        "columns": 12,
        "items": [{"id": w["id"], "x": 0, "y": 7 * i, "w": 6, "h": 7} for i, w in enumerate(widgets)],
    }
    name = f"grafana board {uuid.uuid4().hex[:6]}"
    with engine.begin() as conn:
        conn.execute(insert(dashboards).values(name=name, widgets=widgets, layout=layout, is_public=True))
        conn.execute(
            insert(alerts).values(
                device_id=device.id,
                severity="critical",
                message="flow high",
                status="active",
                created_at=START + timedelta(minutes=2),
            )
        )
    return {"name": name, "device": device}


def _platform(app: Flask) -> Platform:
    platform: Platform = app.extensions[EXTENSION]
    return platform


def test_exported_panels_give_the_chart_endpoints_numbers(
    app: Flask,
    client: FlaskClient,
    headers_for: Callable[[str], dict[str, str]],
    plant_board: dict[str, Any],
    reader_url: str,
) -> None:
    model = export(_platform(app).engine, plant_board["name"])
    panels = {panel["title"]: panel for panel in model["panels"]}
    assert [panels[t]["type"] for t in ("Flow", "Flow now", "Alerts", "Devices", "Latest")] == [
        "timeseries",
        "gauge",
        "table",
        "table",
        "table",
    ]
    assert panels["Flow"]["gridPos"] == {"x": 0, "y": 0, "w": 12, "h": 7}
    device = plant_board["device"]
    end = START + timedelta(minutes=MINUTES)
    ran: dict[str, list[tuple]] = {}
    with psycopg.connect(reader_url) as conn:
        for title, panel in panels.items():
            raw = panel["targets"][0]["rawSql"]
            ran[title] = conn.execute(_expand(raw, START, end - timedelta(microseconds=1), 60)).fetchall()

    chart = client.get(
        f"/api/v1/telemetry/aggregate?device_id={device.id}&keys=flow&keys=pressure&interval=1m&functions=avg"
        f"&start={START.isoformat().replace('+00:00', 'Z')}&end={end.isoformat().replace('+00:00', 'Z')}",
        headers=headers_for("viewer"),
    )
    assert chart.status_code == 200, chart.get_json()
    expected = sorted(
        (datetime.fromisoformat(item["bucket"]).timestamp(), item["key"], item["values"]["avg"])
        for item in chart.get_json()["items"]
    )
    got = sorted((float(t), metric, value) for t, metric, value in ran["Flow"])
    assert len(got) == len(expected) == 2 * MINUTES
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[:2] == theirs[:2] and mine[2] == pytest.approx(theirs[2])

    latest = client.get(f"/api/v1/telemetry/latest?device_id={device.id}", headers=headers_for("viewer"))
    flow_now = next(item["value"] for item in latest.get_json()["items"] if item["key"] == "flow")
    assert [row[1] for row in ran["Flow now"]] == [flow_now] == [13.0]
    assert [row[3] for row in ran["Alerts"]] == ["flow high"]
    assert device.name in [row[0] for row in ran["Devices"]]
    assert [row[0] for row in ran["Latest"]] == ["flow"]


def test_export_command_writes_the_dashboard(
    database_url: str, plant_board: dict[str, Any], tmp_path: Any
) -> None:
    env = {**os.environ, "WORKBENCH_DATABASE_URL": database_url, "WORKBENCH_DATA_DIR": str(tmp_path)}
    out = tmp_path / "board.json"
    done = subprocess.run(
        [sys.executable, "-m", "app", "grafana", "export", plant_board["name"], "--output", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert '"rawSql"' in out.read_text() and plant_board["name"] in out.read_text()
    missing = subprocess.run(
        [sys.executable, "-m", "app", "grafana", "export", "no such board"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "no dashboard named" in missing.stderr


def test_shipped_dashboard_is_what_export_writes() -> None:
    """The shipped Grafana dashboard is regenerated from this board, never edited by hand."""
    import json

    from workbench.grafana import dashboard_json

    board = {
        "id": "00000000-0000-0000-0000-000000000001",
        "name": "Plant alerts and devices",
        "widgets": [
            {"id": "status", "type": "status", "title": "Devices", "window": "24h"},
            {"id": "alerts", "type": "alerts", "title": "Open alerts"},
        ],
        "layout": {
            "items": [
                {"id": "status", "x": 0, "y": 0, "w": 6, "h": 10},
                {"id": "alerts", "x": 6, "y": 0, "w": 6, "h": 10},
            ]
        },
    }
    shipped = ROOT / "deploy/grafana/dashboards/plant-alerts-and-devices.json"
    assert json.loads(shipped.read_text()) == dashboard_json(board)
