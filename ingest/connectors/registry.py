"""Protocol connectors by name: built-ins register here through the same door a plugin would."""

from __future__ import annotations

from ingest.connectors.base import DeviceConnector
from workbench import plugins

CONNECTORS: plugins.Kind[type[DeviceConnector]] = plugins.Kind(
    "connector", ("ingest.connectors.modbus", "ingest.connectors.opcua")
)


def register(cls: type[DeviceConnector]) -> type[DeviceConnector]:
    """Register a connector class under its ``protocol`` (usable as a class decorator)."""
    if not cls.protocol:
        raise ValueError(f"{cls.__name__} has no protocol name")
    return CONNECTORS.register(cls.protocol, cls)


def connector_for(protocol: str | None) -> type[DeviceConnector] | None:
    """The connector class for ``protocol``, or None when the platform polls no such protocol."""
    return CONNECTORS.all().get(protocol or "")


def protocols() -> list[str]:
    """Every protocol with a registered connector."""
    return sorted(CONNECTORS.all())
