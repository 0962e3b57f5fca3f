"""Per-key rate limits (429 + Retry-After), CORS, security headers, body size limits, JSON errors."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.workbench.api.fixtures import make_device
from workbench.api.protection import AUTH_MAX_BODY
from workbench.platform import EXTENSION

Headers = Callable[[str], dict[str, str]]


def test_each_key_has_its_own_hourly_budget(app: Flask, client: FlaskClient) -> None:
    limited = make_device(app, f"limited-{uuid.uuid4().hex[:6]}", rate_limit=3)
    other = make_device(app, f"free-{uuid.uuid4().hex[:6]}", rate_limit=3)
    # (a device key lists its own device)
    statuses = [client.get("/api/v1/devices", headers=limited.headers) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    refused = statuses[-1]
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert client.get("/api/v1/devices", headers=other.headers).status_code == 200


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


class Endless(io.RawIOBase):
    """A request body of ``size`` bytes produced on demand, counting how many the server read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # only for the test client's length probe (tell, seek to the end and back)

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = self.size + offset if whence == 2 else offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        count = max(0, min(len(buffer), self.size - self.position))
        buffer[:count] = b" " * count
        self.position += count
        self.read_bytes += count
        return count


def _post_chunked(app: Flask, path: str, body: Endless, content_type: str) -> int:
    """POST ``body`` chunked, without Content-Length: werkzeug can only size it by reading."""
    environ = EnvironBuilder(
        path=path, method="POST", input_stream=body, content_type=content_type
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input_terminated"] = True
    _, status, _ = run_wsgi_app(app.wsgi_app, environ, buffered=True)
    return int(status.split()[0])


def test_login_bodies_are_refused_above_a_few_kilobytes_before_parsing(
    app: Flask, client: FlaskClient
) -> None:
    big = {"email": "x@example.com", "password": "p" * (AUTH_MAX_BODY + 1)}
    response = client.post("/api/v1/auth/login", json=big)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    form = client.post("/login", data={"email": "x@example.com", "password": "p" * (AUTH_MAX_BODY + 1)})
    assert form.status_code == 413
    for path, kind in (
        ("/api/v1/auth/login", "application/json"),
        ("/login", "application/x-www-form-urlencoded"),
    ):
        declared = Endless(50 * 1024 * 1024)
        response = client.post(path, input_stream=declared, content_type=kind)
        assert response.status_code == 413 and declared.read_bytes == 0  # refused from the header alone
        chunked = Endless(50 * 1024 * 1024)
        assert _post_chunked(app, path, chunked, kind) == 413
        assert chunked.read_bytes <= AUTH_MAX_BODY + 64 * 1024  # read up to the limit, not the 50 MB
    ok = client.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x"})
    assert ok.status_code == 401  # an ordinary login body still reaches the password check


def test_the_app_wide_body_limit_follows_the_setting(app: Flask, headers_for: Headers) -> None:
    from app import create_app

    small = replace(app.extensions[EXTENSION].settings, max_body_bytes=2048)
    client = create_app(small).test_client()
    path = f"/api/v1/alerts/{uuid.uuid4()}/ack"  # a route with no limit of its own
    response = client.put(path, json={"comment": "x" * 4096}, headers=headers_for("admin"))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert client.put(path, json={"comment": "x"}, headers=headers_for("admin")).status_code == 404


def test_retry_after_only_on_refusals(app: Flask, client: FlaskClient) -> None:
    keyed = make_device(app, f"retry-{uuid.uuid4().hex[:6]}", rate_limit=2)
    point = {"key": "t", "value": 1.0}
    answers = [client.post("/api/v1/telemetry", json=point, headers=keyed.headers) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    for answer in answers[:2]:
        assert "Retry-After" not in answer.headers and answer.headers["X-RateLimit-Limit"] == "2"
    assert int(answers[2].headers["Retry-After"]) > 0
