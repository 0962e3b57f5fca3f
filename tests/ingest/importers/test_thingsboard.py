"""ThingsBoard import from a database in ThingsBoard's layout and from REST JSON: counts, values, reruns."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from ingest.importers.run import import_thingsboard
from ingest.importers.thingsboard import ThingsBoardImport
from ingest.importers.thingsboard_layout import CURRENT, OLDER
from tests.conftest import ROOT, _with_database
from workbench.db.embedded import ensure_database
from workbench.db.engine import libpq_url

BIG = 2**60 + 1  # beyond 2^53: a float cannot hold it
BASE = 1_700_000_000_000
POINTS = 250


@dataclass
class Plant:
    """A generated ThingsBoard database and the ids in it."""

    url: str
    devices: list[uuid.UUID]
    asset: uuid.UUID
    older: bool


def _fill(url: str, older: bool) -> Plant:
    devices = [uuid.uuid4() for _ in range(3)]
    asset = uuid.uuid4()
    pump, meter = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(OLDER if older else CURRENT)
        conn.execute(
            "INSERT INTO device_profile (id, created_time, name, type) VALUES (%s, 0, 'Pump', 'DEFAULT'), "
            "(%s, 0, 'Meter', 'DEFAULT')",
            (pump, meter),
        )
        for device, name, profile in zip(
            devices, ("pump-1", "pump-2", "meter-1"), (pump, pump, meter), strict=True
        ):
            conn.execute(
                "INSERT INTO device (id, created_time, device_profile_id, type, name, label, "
                "additional_info) VALUES (%s, 0, %s, 'default', %s, %s, '{\"description\": \"line 1\"}')",
                (device, profile, name, name.upper()),
            )
        conn.execute(
            "INSERT INTO asset (id, created_time, name, type) VALUES (%s, 0, 'hall', 'building')", (asset,)
        )
        keys = {"temperature": 1, "count": 2, "running": 3, "state": 4, "settings": 5}
        for key, key_id in keys.items():
            conn.execute("INSERT INTO ts_kv_dictionary (key, key_id) VALUES (%s, %s)", (key, key_id))
        for entity in [*devices, asset]:
            conn.execute(
                "INSERT INTO ts_kv (entity_id, key, ts, dbl_v) "
                "SELECT %s, 1, %s + i * 1000, i * 0.5 FROM generate_series(1, %s) AS i",
                (entity, BASE, POINTS),
            )
            conn.execute(
                "INSERT INTO ts_kv (entity_id, key, ts, long_v) SELECT %s, 2, %s + i * 1000, "
                "CASE WHEN i = 1 THEN %s ELSE i END FROM generate_series(1, %s) AS i",
                (entity, BASE, BIG, POINTS),
            )
            conn.execute(
                "INSERT INTO ts_kv (entity_id, key, ts, bool_v) SELECT %s, 3, %s + i * 1000, i %% 2 = 0 "
                "FROM generate_series(1, 10) AS i",
                (entity, BASE),
            )
            conn.execute(
                "INSERT INTO ts_kv (entity_id, key, ts, str_v) VALUES (%s, 4, %s, 'RUNNING')",
                (entity, BASE + 5),
            )
            conn.execute(
                'INSERT INTO ts_kv (entity_id, key, ts, json_v) VALUES (%s, 5, %s, \'{"mode": "auto"}\')',
                (entity, BASE + 5),
            )
            conn.execute(
                "INSERT INTO ts_kv_latest (entity_id, key, ts, dbl_v) VALUES (%s, 1, %s, 125.0)",
                (entity, BASE + POINTS * 1000),
            )
        if older:
            conn.execute(
                "INSERT INTO attribute_kv (entity_type, entity_id, attribute_type, attribute_key, "
                "dbl_v, str_v) "
                "VALUES ('DEVICE', %s, 'SHARED_SCOPE', 'setpoint', 42.5, NULL), "
                "('DEVICE', %s, 'SERVER_SCOPE', 'serial', NULL, 'SN-1')",
                (devices[0], devices[0]),
            )
            alarm_state = ("status", "'ACTIVE_UNACK'", "'ACTIVE_ACK'", "'CLEARED_ACK'")
        else:
            conn.execute("INSERT INTO key_dictionary (key, key_id) VALUES ('setpoint', 1), ('serial', 2)")
            conn.execute(
                "INSERT INTO attribute_kv (entity_id, attribute_type, attribute_key, dbl_v, str_v) "
                "VALUES (%s, 3, 1, 42.5, NULL), (%s, 2, 2, NULL, 'SN-1')",
                (devices[0], devices[0]),
            )
            alarm_state = ("acknowledged, cleared", "false, false", "true, false", "true, true")
        columns, active, acked, cleared = alarm_state
        for originator, kind, severity, state in (
            (devices[0], "High Temperature", "CRITICAL", active),
            (devices[1], "Low Flow", "MINOR", acked),
            (devices[2], "Offline", "WARNING", cleared),
            (asset, "Door open", "MAJOR", active),
        ):
            conn.execute(
                f"INSERT INTO alarm (id, created_time, originator_id, originator_type, type, severity, "
                f"start_ts, ack_ts, clear_ts, {columns}) VALUES (%s, %s, %s, 5, %s, %s, %s, %s, %s, {state})",
                (uuid.uuid4(), BASE, originator, kind, severity, BASE, BASE + 10, BASE + 20),
            )
    return Plant(url, devices, asset, older)


@contextlib.contextmanager
def _scratch_plant(server_url: str, older: bool) -> Iterator[Plant]:
    name = f"tb_{uuid.uuid4().hex[:10]}"
    ensure_database(server_url, name)
    try:
        yield _fill(libpq_url(_with_database(server_url, name)), older)
    finally:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["current", "older"])
def any_plant(request: pytest.FixtureRequest, postgres_server_url: str) -> Iterator[Plant]:
    """A ThingsBoard database (each layout in turn): three devices, an asset, five value types, alarms."""
    with _scratch_plant(postgres_server_url, request.param == "older") as plant:
        yield plant


@pytest.fixture
def plant(postgres_server_url: str) -> Iterator[Plant]:
    """A ThingsBoard database in the current layout."""
    with _scratch_plant(postgres_server_url, older=False) as made:
        yield made


def _rows(database_url: str, plant: Plant) -> list[tuple]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(
            "SELECT device_id, key, timestamp, value, text_value FROM telemetry WHERE device_id = ANY(%s) "
            "ORDER BY device_id, key, timestamp",
            (plant.devices,),
        ).fetchall()


def test_import_keeps_devices_values_latest_and_alarms(any_plant: Plant, database_url: str) -> None:
    plant = any_plant
    summary = import_thingsboard(database_url, plant.url)
    rows = _rows(database_url, plant)
    per_device = POINTS * 2 + 10 + 2
    assert summary.devices == 3 and summary.rows == len(rows) == 3 * per_device
    assert summary.skipped["telemetry of an entity that is not a device (asset, customer…)"] == per_device
    assert summary.skipped["alarm of an entity that is not a device"] == 1
    first = [row for row in rows if row[0] == plant.devices[0]]
    temperature = [row[3] for row in first if row[1] == "temperature"]
    assert sum(temperature) == pytest.approx(sum(i * 0.5 for i in range(1, POINTS + 1)))
    counts = [row for row in first if row[1] == "count"]
    assert counts[0][4] == str(BIG) and counts[0][3] == float(BIG) and counts[1][3] == 2.0
    assert [row[3] for row in first if row[1] == "running"] == [0.0, 1.0] * 5
    assert [row[4] for row in first if row[1] == "state"] == ["RUNNING"]
    assert json.loads(next(row[4] for row in first if row[1] == "settings")) == {"mode": "auto"}
    assert first[0][2].timestamp() * 1000 == BASE + 1000
    with psycopg.connect(libpq_url(database_url)) as conn:
        devices = conn.execute(
            "SELECT name, type, config, metadata FROM devices WHERE id = ANY(%s) ORDER BY name",
            (plant.devices,),
        ).fetchall()
        latest = conn.execute(
            "SELECT value FROM latest_values WHERE device_id = %s AND key = 'temperature'",
            (plant.devices[0],),
        ).fetchone()
        alerts = dict(
            conn.execute(
                "SELECT message, status || '/' || severity FROM alerts WHERE device_id = ANY(%s)",
                (plant.devices,),
            ).fetchall()
        )
        rollup = conn.execute(
            "SELECT sum(count) FROM telemetry_1m WHERE device_id = %s AND key = 'temperature'",
            (plant.devices[0],),
        ).fetchone()
    assert [(name, kind) for name, kind, _, _ in devices] == [
        ("meter-1", "Meter"),
        ("pump-1", "Pump"),
        ("pump-2", "Pump"),
    ]
    pump = devices[1]
    assert pump[2] == {"setpoint": 42.5}
    assert pump[3]["thingsboard_attributes"]["SERVER_SCOPE"] == {"serial": "SN-1"}
    assert pump[3]["thingsboard"]["label"] == "PUMP-1"
    assert latest == (125.0,)
    assert alerts == {
        "High Temperature": "active/critical",
        "Low Flow": "acknowledged/warning",
        "Offline": "resolved/warning",
    }
    assert rollup == (POINTS,)

    again = import_thingsboard(database_url, plant.url)
    assert (again.devices, again.rows, again.alarms) == (0, 0, 0)
    assert len(_rows(database_url, plant)) == len(rows)


def test_an_interrupted_import_resumes_without_duplicates(plant: Plant, database_url: str) -> None:
    chunks: list[int] = []

    def stop_after_three(total: int):  # type: ignore[no-untyped-def]
        def advance(rows: int) -> None:
            chunks.append(rows)
            if len(chunks) == 3:
                raise KeyboardInterrupt

        return advance

    job = ThingsBoardImport(plant.url, libpq_url(database_url), chunk_rows=100)
    with pytest.raises(KeyboardInterrupt):
        job.run(stop_after_three)
    total = 3 * (POINTS * 2 + 12)
    copied = sum(chunks)
    assert len(_rows(database_url, plant)) == copied and 0 < copied < total
    resumed = ThingsBoardImport(plant.url, libpq_url(database_url), chunk_rows=100).run()
    rows = _rows(database_url, plant)
    assert resumed.rows + copied == len(rows) == total
    assert len({row[:3] for row in rows}) == len(rows)


def test_rest_json_files_import_typed_values_once(tmp_path: Path, database_url: str) -> None:
    name = f"tb-json-{uuid.uuid4().hex[:6]}"
    document = {
        "temperature": [{"ts": BASE + 2000, "value": "21.5"}, {"ts": BASE + 1000, "value": "20.5"}],
        "running": [{"ts": BASE, "value": "true"}],
        "state": [{"ts": BASE, "value": "RUNNING"}],
        "settings": [{"ts": BASE, "value": {"mode": "auto"}}],
        "broken": [{"value": 1}],
    }
    path = tmp_path / "telemetry.json"
    path.write_text(json.dumps(document))
    summary = import_thingsboard(database_url, files=(path,), device=name)
    assert summary.devices == 1 and summary.rows == 5
    assert summary.skipped["a point without an integer ts and a value"] == 1
    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute(
            "SELECT t.key, t.value, t.text_value FROM telemetry t JOIN devices d ON d.id = t.device_id "
            "WHERE d.name = %s ORDER BY t.key, t.timestamp",
            (name,),
        ).fetchall()
    assert rows == [
        ("running", 1.0, None),
        ("settings", None, '{"mode":"auto"}'),
        ("state", None, "RUNNING"),
        ("temperature", 20.5, None),
        ("temperature", 21.5, None),
    ]
    again = import_thingsboard(database_url, files=(path,), device=name)
    assert again.rows == 0 and again.devices == 0


def test_command_line_prints_the_summary(plant: Plant, database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "WORKBENCH_DATABASE_URL": database_url, "WORKBENCH_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "app", "import", "thingsboard", "--database", plant.url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"rows {3 * (POINTS * 2 + 12)}" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "app", "import", "thingsboard", "--database", database_url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "not a ThingsBoard database" in bad.stderr


def test_extreme_longs_keep_their_digits(plant: Plant, database_url: str) -> None:
    smallest, largest = -(2**63), 2**63 - 1
    with psycopg.connect(plant.url, autocommit=True) as conn:
        conn.execute("INSERT INTO ts_kv_dictionary (key, key_id) VALUES ('odometer', 6)")
        conn.execute(
            "INSERT INTO ts_kv (entity_id, key, ts, long_v) VALUES (%s, 6, %s, %s), (%s, 6, %s, %s)",
            (plant.devices[0], BASE + 1, smallest, plant.devices[0], BASE + 2, largest),
        )
    import_thingsboard(database_url, plant.url)
    odometer = [row for row in _rows(database_url, plant) if row[1] == "odometer"]
    assert [(row[3], row[4]) for row in odometer] == [
        (float(smallest), str(smallest)),
        (float(largest), str(largest)),
    ]


def test_chunks_span_series_and_a_rerun_takes_only_new_rows(plant: Plant, database_url: str) -> None:
    chunks: list[int] = []
    totals: list[int] = []

    def progress(total: int):  # type: ignore[no-untyped-def]
        totals.append(total)
        return chunks.append

    first = ThingsBoardImport(plant.url, libpq_url(database_url), chunk_rows=200).run(progress)
    total = 3 * (POINTS * 2 + 12)
    assert first.rows == sum(chunks) == totals[0] == total and first.series == 15
    assert len(chunks) < 15  # a chunk holds a time slice of several series, not one series
    with psycopg.connect(plant.url, autocommit=True) as conn:  # ThingsBoard keeps recording
        conn.execute(
            "INSERT INTO ts_kv (entity_id, key, ts, dbl_v) "
            "SELECT %s, 1, %s + i * 1000, -i FROM generate_series(1, 7) AS i",
            (plant.devices[1], BASE + POINTS * 1000),
        )
    chunks.clear()
    again = ThingsBoardImport(plant.url, libpq_url(database_url), chunk_rows=200).run(progress)
    assert (again.rows, again.series, sum(chunks), totals[1]) == (7, 1, 7, 7)
    rows = _rows(database_url, plant)
    assert len(rows) == total + 7 and len({row[:3] for row in rows}) == len(rows)
    assert sorted(row[3] for row in rows if row[0] == plant.devices[1] and (row[3] or 0) < 0) == list(
        range(-7, 0)
    )
    assert ThingsBoardImport(plant.url, libpq_url(database_url)).run().rows == 0
