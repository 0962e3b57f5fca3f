"""The running platform's shared parts, attached to the Flask app and reachable from requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import Engine

from workbench.health import HealthRegistry
from workbench.live.bus import EventBus
from workbench.mqtt import MqttPublisher
from workbench.settings import Settings

EXTENSION = "workbench"


@dataclass
class Platform:
    """Settings, database engine, event bus and health checks of one running platform."""

    settings: Settings
    engine: Engine
    bus: EventBus
    health: HealthRegistry = field(default_factory=HealthRegistry)
    mqtt: MqttPublisher | None = None
    services: dict[str, Any] = field(default_factory=dict)
    # A streaming replica for read-only queries (WORKBENCH_DATABASE_READ_URL); None: the primary serves all.
    reader: Engine | None = None

    def read_engine(self) -> Engine:
        """The engine for read-only queries: the replica when configured, else the primary."""
        return self.reader or self.engine


def current_platform() -> Platform:
    """The platform of the app handling the current request."""
    platform: Platform = current_app.extensions[EXTENSION]
    return platform
