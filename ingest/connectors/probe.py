"""Read a connector config once, outside the running connectors: the devices page's "Test connection"."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from ingest.connectors.base import CollectingSink, DeviceConfig
from ingest.connectors.registry import connector_for

# However slow the device, the person testing it gets an answer within this many seconds.
PROBE_TIMEOUT_S = 10.0


def read_once(protocol: str, connection_string: str | None, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The values a ``protocol`` device with this config answers now, as ``{key, value, unit, quality}``.

    LookupError when no connector serves ``protocol``; the connector's own error when the read fails.
    """
    cls = connector_for(protocol)
    if cls is None:
        raise LookupError(f"no connector polls protocol {protocol!r}")
    device = DeviceConfig(uuid.uuid4(), "connection test", protocol, connection_string, config)
    connector = cls(device, CollectingSink(), lambda *args: None)
    readings = asyncio.run(asyncio.wait_for(connector.read_once(), PROBE_TIMEOUT_S))
    return [{"key": r.key, "value": r.value, "unit": r.unit, "quality": r.quality} for r in readings]
