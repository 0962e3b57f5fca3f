"""Protocol connectors by name: built-ins register here through the same door a plugin would."""

from __future__ import annotations

import importlib

from ingest.connectors.base import DeviceConnector
from workbench import plugins

KIND = "connector"  # in workbench.plugins


def register(cls: type[DeviceConnector]) -> type[DeviceConnector]:
    """Register a connector class under its ``protocol`` (usable as a class decorator)."""
    if not cls.protocol:
        raise ValueError(f"{cls.__name__} has no protocol name")
    plugins.register(KIND, cls.protocol, cls)
    return cls


def connector_for(protocol: str | None) -> type[DeviceConnector] | None:
    """The connector class for ``protocol``, or None when the platform polls no such protocol."""
    _load_builtins()
    found: type[DeviceConnector] | None = plugins.registered(KIND).get(protocol or "")
    return found


def protocols() -> list[str]:
    """Every protocol with a registered connector."""
    _load_builtins()
    return sorted(plugins.registered(KIND))


def _load_builtins() -> None:
    # Imported lazily: asyncua and pymodbus take a moment to import and not every process needs them.
    for name in ("modbus", "opcua"):
        importlib.import_module(f"ingest.connectors.{name}")
