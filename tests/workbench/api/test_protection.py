"""Per-key rate limits (429 + Retry-After), CORS, security headers, body size limits, JSON errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

from flask import Flask
from flask.testing import FlaskClient

from tests.workbench.api.fixtures import make_device
from workbench.platform import EXTENSION

Headers = Callable[[str], dict[str, str]]


def test_each_key_has_its_own_hourly_budget(app: Flask, client: FlaskClient) -> None:
    limited = make_device(app, f"limited-{uuid.uuid4().hex[:6]}", rate_limit=3)
    other = make_device(app, f"free-{uuid.uuid4().hex[:6]}", rate_limit=3)
    statuses = [client.get("/api/v1/devices", headers=limited.headers) for _ in range(4)]
    assert [r.status_code for r in statuses] == [403, 403, 403, 429]
    refused = statuses[-1]
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert client.get("/api/v1/devices", headers=other.headers).status_code == 403


def test_security_headers_and_no_store(client: FlaskClient, headers_for: Headers) -> None:
    response = client.get("/api/v1/devices", headers=headers_for("viewer"))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_oversized_body_is_413_json(client: FlaskClient, headers_for: Headers) -> None:
    big = {"name": "x" * (2 * 1024 * 1024)}
    response = client.post("/api/v1/dashboards", json=big, headers=headers_for("admin"))
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "request_entity_too_large"


def test_nul_bytes_are_a_client_error(client: FlaskClient, headers_for: Headers) -> None:
    response = client.post("/api/v1/dashboards", json={"name": "a\x00b"}, headers=headers_for("admin"))
    assert response.status_code == 400 and "error" in response.get_json()


def test_cors_follows_the_setting(app: Flask) -> None:
    from app import create_app

    settings = replace(app.extensions[EXTENSION].settings, cors_origins="https://plant.example.com")
    client = create_app(settings).test_client()
    allowed = client.options(
        "/api/v1/devices",
        headers={"Origin": "https://plant.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://plant.example.com"
    other = client.get("/api/v1/devices", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
    closed = app.test_client().get("/api/v1/devices", headers={"Origin": "https://plant.example.com"})
    assert "Access-Control-Allow-Origin" not in closed.headers


def test_retry_after_only_on_refusals(app: Flask, client: FlaskClient) -> None:
    keyed = make_device(app, f"retry-{uuid.uuid4().hex[:6]}", rate_limit=2)
    point = {"key": "t", "value": 1.0}
    answers = [client.post("/api/v1/telemetry", json=point, headers=keyed.headers) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    for answer in answers[:2]:
        assert "Retry-After" not in answer.headers and answer.headers["X-RateLimit-Limit"] == "2"
    assert int(answers[2].headers["Retry-After"]) > 0
