"""Prometheus metrics of the platform, declared once; parts update them, ``/metrics`` exposes them."""

from __future__ import annotations

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
