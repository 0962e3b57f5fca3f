"""/healthz reports every component; /metrics speaks Prometheus; API errors are JSON."""

from __future__ import annotations

from flask.testing import FlaskClient

from workbench.platform import current_platform


def test_healthz_reports_the_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["components"]["database"]["status"] == "up"


def test_healthz_is_503_when_a_component_is_down(client: FlaskClient) -> None:
    with client.application.app_context():
        health = current_platform().health

        def broken() -> None:
            raise ConnectionError("broker gone")

        health.register("broken-part", broken)
        try:
            response = client.get("/healthz")
        finally:
            del health.checks["broken-part"]
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
