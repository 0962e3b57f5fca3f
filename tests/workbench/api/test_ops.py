"""/healthz reports every component; /metrics speaks Prometheus; API errors are JSON."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from tests.workbench.api.fixtures import make_device
from workbench.platform import current_platform

Headers = Callable[[str], dict[str, str]]


def test_healthz_reports_the_database(client: FlaskClient, headers_for: Headers) -> None:
    response = client.get("/healthz", headers=headers_for("admin"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["components"]["database"]["status"] == "up"


def test_anonymous_healthz_gives_the_status_only(
    app: Flask, client: FlaskClient, headers_for: Headers
) -> None:
    # A device the connectors poll: its id, name and connection error must not reach anonymous callers.
    device = make_device(app, f"secret-plc-{id(app)}")
    state = {"devices": {str(device.id): "refused"}}
    with app.app_context():
        current_platform().health.register("probe-connector", lambda: state)
    try:
        for caller in ("anonymous", "device"):
            response = client.get("/healthz", headers=headers_for(caller))
            assert response.status_code == 200
            assert response.get_json() == {"status": "ok"}, caller
            assert str(device.id) not in response.get_data(as_text=True)
        for role in ("admin", "viewer"):
            detailed = client.get("/healthz", headers=headers_for(role)).get_json()
            assert detailed["components"]["probe-connector"]["devices"] == {str(device.id): "refused"}
    finally:
        with app.app_context():
            del current_platform().health.checks["probe-connector"]


def test_healthz_is_503_when_a_component_is_down(client: FlaskClient, headers_for: Headers) -> None:
    with client.application.app_context():
        health = current_platform().health

    def broken() -> None:
        raise ConnectionError("broker gone")

    health.register("broken-part", broken)
    try:  # each request in its own app context, as a server gives it
        anonymous = client.get("/healthz")
        response = client.get("/healthz", headers=headers_for("admin"))
    finally:
        del health.checks["broken-part"]
    assert anonymous.status_code == 503 and anonymous.get_json() == {"status": "degraded"}
    assert response.status_code == 503
    assert response.get_json()["components"]["broken-part"] == {
        "status": "down",
        "error": "broker gone",
        "latency_ms": response.get_json()["components"]["broken-part"]["latency_ms"],
    }


def test_metrics_is_prometheus_text(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert b"workbench_points_accepted_total" in response.data


def test_unknown_api_route_is_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
