"""The running platform's shared parts, attached to the Flask app and reachable from requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import Engine

from workbench.health import HealthRegistry
from workbench.live.bus import EventBus
from workbench.mqtt import MqttPublisher
from workbench.settings import Settings

if TYPE_CHECKING:  # the services' own modules import this one
    from workbench.live.socket import LiveServer
    from workbench.notebooks.rule_schedule import NotebookScheduler
    from workbench.notebooks.runner import NotebookRunner
    from workbench.quarantine import Replayer
    from workbench.reports.scheduler import ReportScheduler
    from workbench.reports.service import ReportService
    from workbench.rules.engine import RuleEngine

EXTENSION = "workbench"


@dataclass
class Services:
    """The running parts of one platform, by name and type; None until the part that runs it starts it."""

    notebooks: NotebookRunner | None = None
    notebook_scheduler: NotebookScheduler | None = None
    rules: RuleEngine | None = None
    reports: ReportService | None = None
    report_scheduler: ReportScheduler | None = None
    live: LiveServer | None = None
    quarantine_replay: Replayer | None = None  # ingest's replay of quarantined items (workbench.quarantine)
    # Ingest's parts (``workbench`` never imports ``ingest``, so they are typed there, not here): the
    # in-process IngestService, the Pipeline every in-process source writes through (HTTP, connectors,
    # the simulator), the ConnectorManager, the demo Simulator and the Mosquitto login sync's stop function.
    ingest: Any = None
    pipeline: Any = None
    connectors: Any = None
    simulator: Any = None
    mosquitto_logins: Any = None
    # Reads a connector config once: (protocol, connection_string, config) -> [{key, value, unit, quality}]
    # (ingest.connectors.probe.read_once; the devices page's "Test connection").
    probe: Callable[[str, str | None, dict[str, Any]], list[dict[str, Any]]] | None = None


@dataclass
class Platform:
    """Settings, database engine, event bus and health checks of one running platform."""

    settings: Settings
    engine: Engine
    bus: EventBus
    health: HealthRegistry = field(default_factory=HealthRegistry)
    mqtt: MqttPublisher | None = None
    services: Services = field(default_factory=Services)
    # A streaming replica for read-only queries (WORKBENCH_DATABASE_READ_URL); None: the primary serves all.
    reader: Engine | None = None

    def read_engine(self) -> Engine:
        """The engine for read-only queries: the replica when configured, else the primary."""
        return self.reader or self.engine


def current_platform() -> Platform:
    """The platform of the app handling the current request."""
    platform: Platform = current_app.extensions[EXTENSION]
    return platform
