"""HTTP ingest: POST /api/v1/telemetry, bulk import, quarantine list and replay, through the real app."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.ingest.conftest import count_rows
from tests.workbench.api.fixtures import ApiDevice, make_device
from workbench.db.tables import devices
from workbench.platform import EXTENSION


def test_device_key_posts_a_point_a_message_and_a_batch(
    client: FlaskClient, api_device: ApiDevice, engine: Engine
) -> None:
    before = count_rows(engine, api_device.id)
    one = client.post("/api/v1/telemetry", json={"key": "t", "value": 1.5}, headers=api_device.headers)
    assert one.status_code == 200, one.get_json()
    assert one.get_json() == {"accepted": 1, "rejected": 0, "errors": []}
    message = {
        "timestamp": "2026-01-01T00:00:00Z",
        "device_id": str(api_device.id),
        "telemetry": {"temperature": {"value": 25.5, "unit": "C"}, "humidity": {"value": 65, "unit": "%"}},
        "metadata": {"quality": 100, "source": "sensor-1"},
    }
    assert (
        client.post("/api/v1/telemetry", json=message, headers=api_device.headers).get_json()["accepted"] == 2
    )
    batch = [{"key": "k", "value": i, "timestamp": 1767225600 + i} for i in range(1000)]
    batch.append({"key": "k", "value": "oops"})
    answer = client.post("/api/v1/telemetry", json=batch, headers=api_device.headers).get_json()
    assert answer["accepted"] == 1000 and answer["rejected"] == 1
    assert answer["errors"][0]["index"] == 1000 and "not declared text" in answer["errors"][0]["reason"]
    assert count_rows(engine, api_device.id) == before + 1003


def test_device_key_cannot_write_another_device(
    client: FlaskClient, api_device: ApiDevice, other_api_device: ApiDevice, engine: Engine
) -> None:
    before = count_rows(engine, other_api_device.id)
    body = [{"key": "t", "value": 1}, {"device_id": str(other_api_device.id), "key": "t", "value": 1}]
    response = client.post("/api/v1/telemetry", json=body, headers=api_device.headers)
    assert response.status_code == 403
    assert count_rows(engine, other_api_device.id) == before


def test_anonymous_and_viewer_are_refused(client: FlaskClient, auth_headers: dict[str, Any]) -> None:
    body = {"device_id": str(uuid.uuid4()), "key": "t", "value": 1}
    assert client.post("/api/v1/telemetry", json=body).status_code == 401
    assert client.post("/api/v1/telemetry", json=body, headers=auth_headers["viewer"]).status_code == 403


def test_malformed_body_is_quarantined_and_answered_400(
    client: FlaskClient, api_device: ApiDevice, auth_headers: dict[str, Any]
) -> None:
    response = client.post(
        "/api/v1/telemetry",
        data=b"{not json",
        headers={**api_device.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    listing = client.get(f"/api/v1/quarantine?device_id={api_device.id}", headers=auth_headers["engineer"])
    assert listing.status_code == 200
    assert any(item["payload"] == "{not json" for item in listing.get_json()["items"])


def test_bulk_import_csv_and_ndjson(
    client: FlaskClient, api_device: ApiDevice, auth_headers: dict[str, Any], engine: Engine
) -> None:
    before = count_rows(engine, api_device.id)
    lines = ["timestamp,device_id,key,value,unit,quality"]
    lines += [f"{1767225600 + i},{api_device.id},flow,{i * 0.5},m3/h,100" for i in range(20_000)]
    lines.append(f"2026-01-01T00:00:00Z,{api_device.id},flow,NaN,,")
    csv_body = ("\n".join(lines) + "\n").encode()
    answer = client.post(
        "/api/v1/telemetry/import",
        data=csv_body,
        headers={**auth_headers["engineer"], "Content-Type": "text/csv"},
    ).get_json()
    assert answer["accepted"] == 20_000 and answer["rejected"] == 1
    assert answer["errors"][0]["line"] == 20_002
    ndjson = b"\n".join(
        [
            b'{"key": "level", "value": 3, "timestamp": "2026-01-01T00:00:00Z"}',
            b"not json",
            b'{"key": "level", "value": 4, "timestamp": "2026-01-01T00:00:01Z"}',
        ]
    )
    answer = client.post(
        "/api/v1/telemetry/import?format=ndjson", data=ndjson, headers=api_device.headers
    ).get_json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    assert count_rows(engine, api_device.id) == before + 20_002


def test_replay_after_declaring_a_text_key(
    client: FlaskClient, api_device: ApiDevice, auth_headers: dict[str, Any], engine: Engine
) -> None:
    answer = client.post(
        "/api/v1/telemetry", json={"key": "mode", "value": "auto"}, headers=api_device.headers
    ).get_json()
    assert answer["rejected"] == 1
    listing = client.get(f"/api/v1/quarantine?device_id={api_device.id}", headers=auth_headers["engineer"])
    item = next(i for i in listing.get_json()["items"] if '"mode"' in i["payload"])
    assert "not declared text" in item["reason"]
    assert (
        client.post(
            "/api/v1/quarantine/replay", json={"ids": [item["id"]]}, headers=auth_headers["operator"]
        ).status_code
        == 403
    )
    still = client.post(
        "/api/v1/quarantine/replay", json={"ids": [item["id"]]}, headers=auth_headers["engineer"]
    )
    assert still.get_json()["still_rejected"] == 1
    with engine.begin() as conn:
        conn.execute(
            update(devices).where(devices.c.id == api_device.id).values(config={"text_keys": ["mode"]})
        )
    done = client.post(
        "/api/v1/quarantine/replay", json={"ids": [item["id"]]}, headers=auth_headers["engineer"]
    )
    assert done.get_json()["replayed"] == 1
    from workbench.db.tables import telemetry

    with engine.connect() as conn:
        text = conn.execute(
            select(telemetry.c.text_value).where(
                telemetry.c.device_id == api_device.id, telemetry.c.key == "mode"
            )
        ).scalar_one()
    assert text == "auto"
    listing = client.get(f"/api/v1/quarantine?device_id={api_device.id}", headers=auth_headers["engineer"])
    assert all(i["id"] != item["id"] for i in listing.get_json()["items"])


def test_batch_rejections_keep_request_positions_and_the_gate_holds(
    client: FlaskClient, api_device: ApiDevice, other_api_device: ApiDevice, engine: Engine
) -> None:
    """Batches take the fast path; rejected points still report their position in the request."""
    before = count_rows(engine, api_device.id)
    batch: list[Any] = [{"key": "f", "value": i * 0.5, "unit": "bar"} for i in range(20)]
    batch[3] = {"key": "f", "value": "text"}
    batch[11] = {"key": "bad key", "value": 1}
    batch[17] = {"key": "f", "value": 2, "quality": 300}
    answer = client.post("/api/v1/telemetry", json=batch, headers=api_device.headers).get_json()
    assert answer["accepted"] == 17 and answer["rejected"] == 3
    assert [error["index"] for error in answer["errors"]] == [3, 11, 17]
    assert count_rows(engine, api_device.id) == before + 17
    intruder = [{"key": "f", "value": i} for i in range(20)]
    intruder[15] = {"device_id": str(other_api_device.id), "key": "f", "value": 1}
    response = client.post("/api/v1/telemetry", json=intruder, headers=api_device.headers)
    assert response.status_code == 403
    assert count_rows(engine, api_device.id) == before + 17


def test_telemetry_bodies_above_the_setting_are_413_before_parsing(
    app: Flask, client: FlaskClient, api_device: ApiDevice, engine: Engine
) -> None:
    limit = app.extensions[EXTENSION].settings.ingest_max_body_bytes
    before = count_rows(engine, api_device.id)
    point = b'{"key": "big", "value": 1.5},'
    body = b"[" + point * (limit // len(point) + 1) + b'{"key": "big", "value": 1.5}]'
    response = client.post(
        "/api/v1/telemetry", data=body, headers={**api_device.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    chunked = EnvironBuilder(
        path="/api/v1/telemetry",
        method="POST",
        data=body,
        headers={**api_device.headers, "Transfer-Encoding": "chunked"},
        content_type="application/json",
    ).get_environ()
    del chunked["CONTENT_LENGTH"]
    chunked["wsgi.input_terminated"] = True
    _, status, _ = run_wsgi_app(app.wsgi_app, chunked, buffered=True)
    assert status.startswith("413")  # not a 400 for a body cut at the limit
    assert count_rows(engine, api_device.id) == before
    fits = b"[" + point * 1000 + b'{"key": "big", "value": 1.5}]'
    response = client.post(
        "/api/v1/telemetry", data=fits, headers={**api_device.headers, "Content-Type": "application/json"}
    )
    assert response.get_json()["accepted"] == 1001


def test_a_device_key_budget_counts_points_not_requests(
    app: Flask, client: FlaskClient, engine: Engine
) -> None:
    per_unit = app.extensions[EXTENSION].settings.ingest_key_points
    device = make_device(app, f"points-{uuid.uuid4().hex[:6]}", rate_limit=3)  # 3 requests, 3 units of points
    budget = 3 * per_unit

    def post(points: int) -> Any:
        body = [{"key": "p", "value": float(i)} for i in range(points)]
        return client.post("/api/v1/telemetry", json=body, headers=device.headers)

    assert post(budget - 100).status_code == 200
    refused = post(200)  # the second request of three: the request budget holds, the points one does not
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    assert "points" in refused.get_json()["error"]["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert count_rows(engine, device.id) == budget - 100
    whole = post(budget + 1)  # more than a whole hour's budget in one request: never possible
    assert whole.status_code == 413 and whole.get_json()["error"]["details"]["budget"] == budget
    importer = make_device(app, f"points-import-{uuid.uuid4().hex[:6]}", rate_limit=1)
    lines = [f'{{"key": "p", "value": {i}}}' for i in range(per_unit + 500)]
    response = client.post(
        "/api/v1/telemetry/import?format=ndjson", data="\n".join(lines), headers=importer.headers
    )
    assert (
        response.status_code == 429 and f"after {per_unit} points" in response.get_json()["error"]["message"]
    )
