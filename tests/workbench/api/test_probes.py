"""Malformed requests are refused up front (issue 20, item 10), never half-answered or accepted as no-ops."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert

from tests.workbench.api.fixtures import ApiDevice, ApiUser
from workbench.db.tables import dashboards
from workbench.platform import EXTENSION

Headers = Callable[[str], dict[str, str]]
RANGE = "start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z"


def test_nul_in_export_keys_is_refused_before_the_stream_starts(
    client: FlaskClient, headers_for: Headers, api_device: ApiDevice
) -> None:
    for fmt in ("csv", "ndjson"):
        path = f"/api/v1/telemetry/export?device_id={api_device.id}&keys=a%00b&{RANGE}&format={fmt}"
        response = client.get(path, headers=headers_for("viewer"))
        assert response.status_code == 422, response.get_data()[:200]
        assert "control characters" in str(response.get_json()["error"]["details"])


def test_keys_cannot_be_created_already_expired(
    client: FlaskClient, headers_for: Headers, api_device: ApiDevice
) -> None:
    body = {"device_id": str(api_device.id), "name": "born dead", "expires_at": "2000-01-01T00:00:00Z"}
    refused = client.post("/api/v1/keys", json=body, headers=headers_for("admin"))
    assert (
        refused.status_code == 422
        and "expires_at" in refused.get_json()["error"]["details"]["fields"]["json"]
    )
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    made = client.post("/api/v1/keys", json={**body, "expires_at": later}, headers=headers_for("admin"))
    assert made.status_code == 201


def test_a_refused_method_names_the_allowed_ones(client: FlaskClient, headers_for: Headers) -> None:
    for path in ("/api/v1/users", "/api/v1/devices", "/healthz"):
        response = client.open(path, method="TRACE", headers=headers_for("admin"))
        assert response.status_code == 405, path
        assert "GET" in response.headers.get("Allow", ""), path


def test_put_without_a_body_is_refused(
    app: Flask, client: FlaskClient, headers_for: Headers, api_users: dict[str, ApiUser]
) -> None:
    admin = headers_for("admin")
    with app.extensions[EXTENSION].engine.begin() as conn:
        board = conn.execute(
            insert(dashboards).values(name="kept", layout={}, widgets=[]).returning(dashboards.c.id)
        ).scalar_one()
    for path in (f"/api/v1/users/{api_users['viewer'].id}", f"/api/v1/dashboards/{board}"):
        assert client.put(path, headers=admin).status_code == 422, path
        assert client.put(path, headers=admin, json={}).status_code == 422, path
    assert (
        client.put(f"/api/v1/dashboards/{board}", headers=admin, json={"name": "renamed"}).status_code == 200
    )


def test_an_empty_import_is_refused(client: FlaskClient, api_device: ApiDevice) -> None:
    for fmt in ("csv", "ndjson"):
        response = client.post(f"/api/v1/telemetry/import?format={fmt}", headers=api_device.headers, data=b"")
        assert response.status_code == 400 and "no points" in response.get_json()["error"]["message"]
    point = {
        "device_id": str(api_device.id),
        "key": "t",
        "value": 1.5,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    line = json.dumps(point) + "\n"
    accepted = client.post(
        "/api/v1/telemetry/import?format=ndjson", headers=api_device.headers, data=line.encode()
    )
    assert accepted.status_code == 200 and accepted.get_json()["accepted"] == 1, accepted.get_json()
