"""Writes the UI makes: commands (device config goes through ``workbench.devices.push_config``, alerts through
``workbench.rules.alerts.change``)."""

from __future__ import annotations

import uuid
from typing import Any

from workbench.platform import Platform
from workbench.protocols import commands
from workbench.ui import queries


def send_command(
    platform: Platform, device_id: str, name: str, parameters: dict[str, Any], user_id: str
) -> dict[str, Any]:
    """Send a command in the device's protocol (the API's service); ValueError or ConnectionError: why not."""
    device = queries.get_device(platform.engine, device_id)
    if device is None:
        raise ValueError("no such device")
    return commands.issue(platform, device, name, parameters, uuid.UUID(user_id))
