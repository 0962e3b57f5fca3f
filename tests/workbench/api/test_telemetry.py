"""Telemetry queries: raw pages, latest values, aggregates (fixed and calendar buckets), LTTB, exports."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert

from tests.workbench.api.fixtures import ApiDevice, make_device
from workbench.db.tables import latest_values, telemetry
from workbench.platform import EXTENSION

Headers = Callable[[str], dict[str, str]]
START = datetime(2026, 3, 28, 0, 0, tzinfo=UTC)  # the night before Europe/Paris moves to summer time


@pytest.fixture(scope="module")
def plant(app: Flask) -> ApiDevice:
    """A device with two days of one-minute data: temp = minute of the day, flow = 1."""
    device = make_device(app, f"telemetry-{uuid.uuid4().hex[:6]}")
    rows = []
    for minute in range(2 * 24 * 60):
        at = START + timedelta(minutes=minute)
        base = {"timestamp": at, "device_id": device.id}
        rows.append({**base, "key": "temp", "value": float(minute % 1440), "unit": None})
        rows.append({**base, "key": "flow", "value": 1.0, "unit": "m3/h"})
    with app.extensions[EXTENSION].engine.begin() as conn:
        conn.execute(insert(telemetry), rows)
        conn.execute(
            insert(latest_values),
            [
                {"device_id": device.id, "key": r["key"], "timestamp": r["timestamp"], "value": r["value"]}
                for r in rows[-2:]
            ],
        )
    return device


def _get(client: FlaskClient, headers: Headers, url: str, status: int = 200) -> dict:  # type: ignore[type-arg]
    response = client.get(url, headers=headers("viewer"))
    assert response.status_code == status, response.get_json()
    body: dict = response.get_json()  # type: ignore[type-arg]
    return body


def test_raw_pages_in_time_order(client: FlaskClient, headers_for: Headers, plant: ApiDevice) -> None:
    url = (
        f"/api/v1/telemetry?device_id={plant.id}&keys=temp&start=2026-03-28T00:00:00Z"
        "&end=2026-03-28T01:00:00Z&order=asc&page_size=25"
    )
    first = _get(client, headers_for, url)
    assert len(first["items"]) == 25 and first["has_more"]
    assert [p["value"] for p in first["items"][:3]] == [0.0, 1.0, 2.0]
    last = _get(client, headers_for, url + "&page=3")
    assert len(last["items"]) == 10 and not last["has_more"]


def test_bad_time_range_names_the_field(client: FlaskClient, headers_for: Headers, plant: ApiDevice) -> None:
    body = _get(
        client,
        headers_for,
        f"/api/v1/telemetry?device_id={plant.id}&start=2026-03-29T00:00:00Z&end=2026-03-28T00:00:00Z",
        status=400,
    )
    assert "end" in body["error"]["details"]["fields"]
    wrong = _get(client, headers_for, f"/api/v1/telemetry?device_id={plant.id}&start=yesterday", status=422)
    assert "start" in wrong["error"]["message"]


def test_latest(client: FlaskClient, headers_for: Headers, plant: ApiDevice) -> None:
    body = _get(client, headers_for, f"/api/v1/telemetry/latest?device_id={plant.id}")
    assert {(p["key"], p["value"]) for p in body["items"]} == {("temp", 1439.0), ("flow", 1.0)}
    only = _get(client, headers_for, f"/api/v1/telemetry/latest?device_id={plant.id}&keys=flow")
    assert [p["key"] for p in only["items"]] == ["flow"]


def test_fixed_buckets(client: FlaskClient, headers_for: Headers, plant: ApiDevice) -> None:
    url = (
        f"/api/v1/telemetry/aggregate?device_id={plant.id}&keys=temp&start=2026-03-28T00:00:00Z"
        "&end=2026-03-28T02:00:00Z&interval=1h&functions=avg&functions=min&functions=max"
        "&functions=count&functions=first&functions=last&functions=sum&functions=stddev"
    )
    items = _get(client, headers_for, url)["items"]
    assert [i["bucket"] for i in items] == ["2026-03-28T00:00:00+00:00", "2026-03-28T01:00:00+00:00"]
    second = items[1]["values"]
    assert second["min"] == 60 and second["max"] == 119 and second["avg"] == 89.5 and second["count"] == 60
    assert second["first"] == 60 and second["last"] == 119 and second["sum"] == sum(range(60, 120))
    assert second["stddev"] == pytest.approx(17.4642, rel=1e-4)


def test_calendar_days_follow_the_zone(client: FlaskClient, headers_for: Headers, plant: ApiDevice) -> None:
    url = (
        f"/api/v1/telemetry/aggregate?device_id={plant.id}&keys=flow&start=2026-03-27T00:00:00Z"
        "&end=2026-03-31T00:00:00Z&interval=day&functions=count&timezone=Europe/Paris"
    )
    items = _get(client, headers_for, url)["items"]
    # Paris midnight is 23:00 UTC before the switch; 29 March has 23 hours (summer time from 02:00).
    assert [i["bucket"] for i in items] == [
        "2026-03-28T00:00:00+01:00",
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    ]
    assert [i["values"]["count"] for i in items] == [23 * 60, 23 * 60, 2 * 60]


def test_aggregate_refuses_bad_interval_zone_and_too_many_buckets(
    client: FlaskClient, headers_for: Headers, plant: ApiDevice
) -> None:
    base = (
        f"/api/v1/telemetry/aggregate?device_id={plant.id}&keys=temp&start=2026-03-28T00:00:00Z"
        "&end=2026-03-29T00:00:00Z"
    )

    def named(url: str) -> set[str]:
        return set(_get(client, headers_for, url, 400)["error"]["details"]["fields"])

    assert named(base + "&interval=fortnight") == {"interval"}
    assert named(base + "&timezone=Mars/Olympus") == {"timezone"}
    assert named(base.replace("end=2026-03-29", "end=2029-03-29") + "&interval=1s") == {"interval"}


def test_downsample_keeps_extremes(client: FlaskClient, headers_for: Headers, plant: ApiDevice) -> None:
    url = (
        f"/api/v1/telemetry/downsample?device_id={plant.id}&key=temp&start=2026-03-28T00:00:00Z"
        "&end=2026-03-30T00:00:00Z&points=50"
    )
    body = _get(client, headers_for, url)
    assert 3 <= len(body["values"]) <= 50 and len(body["timestamps"]) == len(body["values"])
    assert max(body["values"]) == 1439.0 and min(body["values"]) == 0.0
    assert body["timestamps"] == sorted(body["timestamps"])


def test_exports_stream_csv_and_parquet(client: FlaskClient, headers_for: Headers, plant: ApiDevice) -> None:
    url = f"/api/v1/telemetry/export?device_id={plant.id}&start=2026-03-28T00:00:00Z&end=2026-03-29T00:00:00Z"
    response = client.get(url, headers=headers_for("viewer"))
    assert response.status_code == 200 and response.mimetype == "text/csv" and response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 2 * 1440 and rows[0]["timestamp"].startswith("2026-03-28T00:00:00")
    parquet = client.get(url + "&format=parquet&keys=flow", headers=headers_for("viewer"))
    table = pq.read_table(io.BytesIO(parquet.get_data()))
    assert table.num_rows == 1440 and set(table.column("key").to_pylist()) == {"flow"}
    assert table.column("unit")[0].as_py() == "m3/h"


def test_devices_cannot_read_telemetry(
    client: FlaskClient, plant: ApiDevice, other_api_device: ApiDevice
) -> None:
    for own in (plant, other_api_device):
        response = client.get(f"/api/v1/telemetry/latest?device_id={plant.id}", headers=own.headers)
        assert response.status_code == 403


def test_the_message_metadata_source_reads_back(
    app: Flask, client: FlaskClient, headers_for: Headers
) -> None:
    device = make_device(app, f"sourced-{uuid.uuid4().hex[:6]}")
    message = {
        "timestamp": "2026-01-01T00:00:00Z",
        "telemetry": {"temperature": {"value": 25.5, "unit": "C"}},
        "metadata": {"quality": 90, "source": "sensor-1"},
    }
    assert client.post("/api/v1/telemetry", json=message, headers=device.headers).get_json()["accepted"] == 1
    items = client.get(
        f"/api/v1/telemetry?device_id={device.id}&start=2025-12-31T00:00:00Z&end=2026-01-02T00:00:00Z",
        headers=headers_for("viewer"),
    ).get_json()["items"]
    assert [(i["key"], i["quality"], i["metadata"]) for i in items] == [
        ("temperature", 90, {"source": "sensor-1"})
    ]
