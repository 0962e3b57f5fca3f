"""Operational endpoints: ``/healthz`` (every component) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, g, jsonify, request, session
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from workbench import __version__
from workbench import metrics as _metrics
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


@blueprint.before_app_request
def _start_timer() -> None:
    g.request_started = time.perf_counter()


@blueprint.after_app_request
def _observe(response: Response) -> Response:
    """API latency by route template (bounded labels), and the caller as an active user."""
    started = g.pop("request_started", None)
    if started is not None and request.path.startswith("/api/v1"):
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        _metrics.API_LATENCY.labels(request.method, endpoint, str(response.status_code)).observe(
            time.perf_counter() - started
        )
    principal = g.get("principal")
    if principal is not None and principal.kind == "user":
        _metrics.user_seen(principal.id)
    elif current_app.config.get("SESSION_COOKIE_NAME", "session") in request.cookies and "user_id" in session:
        _metrics.user_seen(session["user_id"])  # a UI user (Dash pages and callbacks)
    return response


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
