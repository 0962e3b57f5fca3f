"""Operational endpoints: ``/healthz`` (every component) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from workbench import __version__
from workbench import metrics as _metrics  # noqa: F401 - registers every platform metric
from workbench.auth.guard import resolve_principal
from workbench.platform import Platform, current_platform

blueprint = Blueprint("ops", __name__)


# Component details name devices, addresses and connection errors: only users whose role reads devices.
DETAILS_PERMISSION = "devices:read"


@blueprint.get("/healthz")
def healthz() -> Response:
    """200 when every component is up, 503 otherwise; the components' states only for a signed-in user."""
    healthy, components = current_platform().health.report()
    body: dict[str, object] = {"status": "ok" if healthy else "degraded"}
    principal = resolve_principal()
    if principal is not None and not principal.is_device and principal.may(DETAILS_PERMISSION):
        body.update(version=__version__, components=components)
    response = jsonify(body)
    response.status_code = 200 if healthy else 503
    return response


@blueprint.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition of every platform metric."""
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


def register_database_check(platform: Platform) -> None:
    """Report the database as a component: reachable, server version, TimescaleDB or not."""

    def check() -> dict[str, object]:
        with platform.engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
            timescale = conn.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
            ).scalar()
        return {"server_version": version, "timescaledb": timescale}

    platform.health.register("database", check)
