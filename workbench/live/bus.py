"""The event bus: committed telemetry batches, status changes and alerts flow through it."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[str, Any], None]

# Every topic published on the bus, declared here once; payloads are documented where they are published.
TELEMETRY_BATCH = "telemetry.batch"  # workbench.live.events.TelemetryBatch
DEVICE_STATUS = "device.status"  # workbench.live.events.DeviceStatus
ALERT = "alert"  # a new alert row (JSON values)
ALERT_UPDATE = "alert.update"  # an alert row whose status changed (JSON values)
RULES_CHANGED = "rules.changed"  # rules were created, changed or deleted; payload: the rule id (or None)
DEVICES_CHANGED = "devices.changed"  # a device was created, changed or deleted: {"id", "change"}
REPORT_PROGRESS = "report.progress"  # a report request's progress (workbench.reports.service)


class EventBus:
    """Synchronous in-process publish/subscribe; a failing handler is logged, never raised to publishers."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._lock = threading.Lock()

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(topic, payload)`` for every event on ``topic``; returns an unsubscribe function."""
        with self._lock:
            self._handlers[topic].append(handler)

        def unsubscribe() -> None:
            with self._lock:
                if handler in self._handlers[topic]:
                    self._handlers[topic].remove(handler)

        return unsubscribe

    def publish(self, topic: str, payload: Any) -> None:
        """Deliver ``payload`` to every handler of ``topic`` in subscription order."""
        with self._lock:
            handlers = list(self._handlers.get(topic, ()))
        for handler in handlers:
            try:
                handler(topic, payload)
            except Exception:
                log.exception("event handler %r failed on %s", handler, topic)
