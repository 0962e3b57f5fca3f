"""The status watcher: devices silent longer than the offline delay go offline (an event each)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy import Engine, text

from ingest import events
from workbench.live.bus import EventBus
from workbench.metrics import ACTIVE_DEVICES

log = logging.getLogger(__name__)

# Works across ingest processes: the database's last_seen is the truth, whoever wrote it. A Sparkplug
# node (a gateway row) sends no points of its own, only its devices' data: it is online from its NBIRTH to
# its NDEATH (its MQTT will), which the Sparkplug host applies, so silence does not apply to it.
MARK_OFFLINE = text(
    "UPDATE devices SET status = 'offline' "
    "WHERE status = 'online' AND (last_seen IS NULL OR last_seen < now() - make_interval(secs => :after)) "
    "AND NOT (protocol = 'sparkplug' AND type = 'gateway') "
    "RETURNING id"
)
COUNT_ONLINE = text("SELECT count(*) FROM devices WHERE status = 'online'")


class StatusWatcher:
    """Every few seconds, marks silent devices offline and publishes DeviceStatus for each."""

    def __init__(self, engine: Engine, bus: EventBus, offline_after: float) -> None:
        self.engine = engine
        self.bus = bus
        self.offline_after = offline_after
        self.interval = max(0.2, min(offline_after / 4, 5.0))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the watcher thread."""
        self._thread = threading.Thread(target=self._run, name="ingest-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def sweep(self) -> list[str]:
        """Mark silent devices offline now; returns their ids."""
        with self.engine.begin() as conn:
            ids = [str(row[0]) for row in conn.execute(MARK_OFFLINE, {"after": self.offline_after})]
            ACTIVE_DEVICES.set(conn.execute(COUNT_ONLINE).scalar_one())
        now = datetime.now(UTC)
        for device_id in ids:
            events.publish_status(self.bus, device_id, "offline", now)
        return ids

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception as error:  # the database may be down; the writer reports it, we retry
                log.debug("status sweep failed: %s", error)
