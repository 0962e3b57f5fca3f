"""The connector manager: one connector per OPC-UA/Modbus device row, kept in step with the table.

Runs inside ``workbench ingest``. It polls ``devices`` every ``WORKBENCH_CONNECTORS_RELOAD_S`` seconds and
compares ``updated_at``: a new device starts a connector, a changed one restarts it with the new config,
a deleted one (or one whose protocol changed) stops it and goes ``offline``. The devices API bumps
``updated_at`` on every change, so no restart is needed after editing a device. With an MQTT broker
configured it also runs the Sparkplug B primary host; and the command dispatcher (``ingest.commands``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select

from ingest.commands import CommandDispatcher
from ingest.connectors import registry
from ingest.connectors.base import DeviceConfig, ReadingSink, StatusSetter, device_status_setter
from ingest.connectors.runner import ConnectorRunner
from ingest.connectors.sparkplug import SparkplugHost
from workbench.db.tables import devices
from workbench.metrics import CONNECTORS
from workbench.platform import Platform
from workbench.secrets import DEVICE_CONFIG, open_all
from workbench.settings import Settings

log = logging.getLogger(__name__)


class ConnectorManager:
    """Starts, reloads and stops protocol connectors; ``health`` is a ``/healthz`` check."""

    def __init__(
        self, engine: Engine, sink: ReadingSink, settings: Settings, status_setter: StatusSetter | None = None
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.settings = settings
        self.set_status = status_setter or device_status_setter(engine)
        self.runner: ConnectorRunner | None = None
        self.sparkplug: SparkplugHost | None = None
        self.commands: CommandDispatcher | None = None
        self.versions: dict[uuid.UUID, Any] = {}
        self.failures: dict[uuid.UUID, str] = {}
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start every configured connector, the Sparkplug host, and the reload loop."""
        if self.settings.connectors_enabled:
            self.runner = ConnectorRunner()
            self.reload()
            self._thread = threading.Thread(target=self._watch, name="connector-manager", daemon=True)
            self._thread.start()
        if self.settings.sparkplug_enabled and self.settings.mqtt_url:
            self.sparkplug = SparkplugHost(
                self.engine,
                self.sink,
                self.settings.mqtt_url,
                host_id=self.settings.sparkplug_host_id,
                auto_register=self.settings.sparkplug_auto_register,
                status_setter=self.set_status,
            )
            self.sparkplug.start()
        if self.settings.connectors_enabled or self.sparkplug is not None:
            self.commands = CommandDispatcher(self.engine, self.sparkplug)
            self.commands.start()

    def stop(self) -> None:
        """Stop the reload loop, every connector (devices go ``offline``) and the Sparkplug host."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.commands is not None:
            self.commands.stop()
        if self.runner is not None:
            for device_id in list(self.runner.connectors):
                self.runner.cancel(device_id, status="offline")
            self.runner.close()
        if self.sparkplug is not None:
            self.sparkplug.stop()

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.connectors_reload_s):
            try:
                self.reload()
                self.last_error = None
            except Exception as error:  # the database may be away; keep running connectors as they are
                self.last_error = str(error)
                log.warning("connector reload failed: %s", error)

    def reload(self) -> dict[str, int]:
        """Bring running connectors in line with the devices table; returns what changed."""
        assert self.runner is not None
        protocols = registry.protocols()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    devices.c.id,
                    devices.c.name,
                    devices.c.protocol,
                    devices.c.connection_string,
                    devices.c.config,
                    devices.c.updated_at,
                ).where(devices.c.protocol.in_(protocols))
            ).all()
        wanted = {row.id: row for row in rows}
        changes = {"started": 0, "restarted": 0, "stopped": 0}
        for device_id in list(self.versions):
            if device_id not in wanted:
                self.runner.cancel(device_id, status="offline")
                self.versions.pop(device_id, None)
                self.failures.pop(device_id, None)
                changes["stopped"] += 1
        for device_id, row in wanted.items():
            version = (row.updated_at, row.protocol)
            if self.versions.get(device_id) == version:
                continue
            restarting = device_id in self.versions
            self.versions[device_id] = version
            connector_class = registry.connector_for(row.protocol)
            assert connector_class is not None
            try:
                # Secrets (an OPC-UA login) are stored sealed: opened here, where they are used.
                config = open_all(dict(row.config or {}), DEVICE_CONFIG, self.settings.resolved_secret_key())
                device = DeviceConfig(
                    row.id, row.name, row.protocol, row.connection_string, config, row.updated_at
                )
                connector = connector_class(device, self.sink, self.set_status)
            except Exception as error:  # a bad config is reported, the device goes to error
                self.runner.cancel(device_id)
                self.failures[device_id] = f"invalid config: {error}"
                self.set_status(device_id, "error")
                continue
            self.failures.pop(device_id, None)
            self.runner.start(connector)
            changes["restarted" if restarting else "started"] += 1
        self._publish_metrics()
        return changes

    def _publish_metrics(self) -> None:
        counts: Counter[tuple[str, str]] = Counter()
        if self.runner is not None:
            for connector in list(self.runner.connectors.values()):
                counts[(connector.protocol, connector.stats.state)] += 1
        CONNECTORS.clear()
        for (protocol, state), count in counts.items():
            CONNECTORS.labels(protocol, state).set(count)

    def health(self) -> dict[str, Any]:
        """Connector states for ``/healthz``; raises when the manager cannot read the devices table."""
        if self.last_error:
            raise ConnectionError(f"connector reload failing: {self.last_error}")
        self._publish_metrics()
        connectors = list(self.runner.connectors.values()) if self.runner else []
        states = Counter(c.stats.state for c in connectors)
        details: dict[str, Any] = {
            "connectors": len(connectors),
            "states": dict(states),
            "devices": {str(c.device.id): c.health() for c in connectors},
            "invalid": {str(k): v for k, v in self.failures.items()},
        }
        if self.sparkplug is not None:
            details["sparkplug"] = self.sparkplug.health()
        if self.commands is not None:
            details["commands"] = self.commands.health()
        return details


def start_connectors(platform: Platform) -> Callable[[], None]:
    """Run a connector manager on the platform's ingest pipeline; register its health; return ``stop``.

    Needs ``platform.services.pipeline`` (the ingest service puts it there). Idempotent: a manager
    already running is left alone.
    """
    existing = platform.services.connectors
    if existing is not None:
        return lambda: None
    manager = ConnectorManager(platform.engine, platform.services.pipeline, platform.settings)
    manager.start()
    platform.services.connectors = manager
    platform.health.register("connectors", manager.health)

    def stop() -> None:
        manager.stop()
        platform.services.connectors = None

    return stop
