"""Prometheus metrics of the platform, declared once; parts update them, ``/metrics`` exposes them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

API_LATENCY = Histogram(
    "workbench_api_request_seconds",
    "API request latency",
    ["method", "endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
POINTS_ACCEPTED = Counter("workbench_points_accepted_total", "Telemetry points committed", ["source"])
POINTS_REJECTED = Counter("workbench_points_rejected_total", "Telemetry points quarantined", ["source"])
BATCH_SIZE = Histogram(
    "workbench_ingest_batch_points",
    "Points per committed batch",
    buckets=(1, 10, 100, 500, 1000, 5000, 10000, 50000),
)
WRITE_LATENCY = Histogram(
    "workbench_ingest_write_seconds",
    "Time to write and commit one batch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
QUEUE_DEPTH = Gauge("workbench_ingest_queue_points", "Points waiting to be written")
MQTT_MESSAGES = Counter("workbench_mqtt_messages_total", "MQTT messages received", ["kind"])
ACTIVE_DEVICES = Gauge("workbench_devices_online", "Devices currently online")
SOCKET_CONNECTIONS = Gauge("workbench_socketio_connections", "Open Socket.IO connections")
ALERTS_RAISED = Counter("workbench_alerts_total", "Alerts raised", ["severity"])
RULE_EVALUATIONS = Counter("workbench_rule_evaluations_total", "Rule evaluations", ["type"])
ACTION_RUNS = Counter("workbench_action_runs_total", "Rule action executions", ["action", "status"])
NOTEBOOK_RUNS = Counter("workbench_notebook_runs_total", "Notebook executions", ["status"])
REPORT_RUNS = Counter("workbench_report_runs_total", "Report renders", ["format", "status"])
ACTIVE_USERS = Gauge("workbench_active_users", "Users seen in the last 15 minutes")
CONNECTOR_READINGS = Counter(
    "workbench_connector_readings_total", "Readings delivered by protocol connectors", ["protocol"]
)
CONNECTOR_ERRORS = Counter(
    "workbench_connector_errors_total", "Connector failures (timeouts, lost connections)", ["protocol"]
)
CONNECTORS = Gauge("workbench_connectors", "Protocol connectors by state", ["protocol", "state"])
DB_QUERY_SECONDS = Histogram(
    "workbench_db_query_seconds",
    "Database statement time (SQLAlchemy engines), by statement kind",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
CACHE_REQUESTS = Counter(
    "workbench_cache_requests_total",
    "Cache lookups by cache and result (hit ratio: hit / all)",
    ["cache", "result"],
)
# The design's task-queue length: work waiting in each of the platform's queues (ingest points apart).
QUEUE_LENGTH = Gauge("workbench_queue_length", "Work waiting, by queue", ["queue"])

ACTIVE_WINDOW_S = 15 * 60
_seen_users: dict[str, float] = {}
_lock = threading.Lock()


def user_seen(user_id: object) -> None:
    """Count a user as active (for ``workbench_active_users``) as of now."""
    with _lock:
        _seen_users[str(user_id)] = time.monotonic()


def _active_users() -> float:
    """Users of this process seen within the window (read at every scrape)."""
    now = time.monotonic()
    with _lock:
        for user, at in list(_seen_users.items()):
            if now - at > ACTIVE_WINDOW_S:
                del _seen_users[user]
        return float(len(_seen_users))


ACTIVE_USERS.set_function(_active_users)


def queue_probe(name: str, probe: Callable[[], int]) -> None:
    """Report ``probe()`` as ``workbench_queue_length{queue=name}``, read at every scrape."""

    def read() -> float:
        try:
            return float(probe())
        except Exception:  # a probe whose service went away (or whose database is down) reads -1
            return -1.0

    QUEUE_LENGTH.labels(name).set_function(read)


_OPERATIONS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "COPY"})


def observe_engine(engine: Any) -> None:
    """Time every statement ``engine`` runs into ``workbench_db_query_seconds``."""
    from sqlalchemy import event

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        conn.info.setdefault("_query_started", []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        stack = conn.info.get("_query_started")
        if not stack:
            return
        elapsed = time.perf_counter() - stack.pop()
        word = statement.lstrip()[:6].upper()
        DB_QUERY_SECONDS.labels(word if word in _OPERATIONS else "other").observe(elapsed)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
