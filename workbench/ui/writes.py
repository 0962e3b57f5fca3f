"""Writes the UI makes: device config and commands (alerts change via ``workbench.rules.alerts.change``)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from workbench.db.tables import devices
from workbench.platform import Platform
from workbench.protocols import commands, config_errors
from workbench.secrets import DEVICE_CONFIG, merge, redact
from workbench.ui import queries


def save_device_config(platform: Platform, device_id: str, config: dict[str, Any]) -> None:
    """Check the config for the device's protocol, store it and, with a broker, publish it retained (§6.1).

    Secrets left out or left as ``{"set": true}`` keep their stored value; all are stored sealed and
    published only as ``{"set": true}``.
    """
    device = queries.get_device(platform.engine, device_id)
    if device is None:
        raise ValueError("no such device")
    errors = config_errors(device["protocol"], config)
    if errors:
        raise ValueError(f"invalid {device['protocol']} config: {json.dumps(errors)}")
    key = platform.settings.resolved_secret_key()
    with platform.engine.begin() as conn:
        stored = conn.execute(select(devices.c.config).where(devices.c.id == uuid.UUID(device_id))).scalar()
        sealed = merge(config, stored, DEVICE_CONFIG, key)
        conn.execute(
            update(devices)
            .where(devices.c.id == uuid.UUID(device_id))
            .values(config=sealed, updated_at=datetime.now(UTC))
        )
    if platform.mqtt is not None:
        shown = redact(sealed, DEVICE_CONFIG)
        platform.mqtt.publish(f"insa/devices/{device_id}/config", shown, retain=True)


def send_command(
    platform: Platform, device_id: str, name: str, parameters: dict[str, Any], user_id: str
) -> dict[str, Any]:
    """Send a command in the device's protocol (the API's service); ValueError or ConnectionError: why not."""
    device = queries.get_device(platform.engine, device_id)
    if device is None:
        raise ValueError("no such device")
    return commands.issue(platform, device, name, parameters, uuid.UUID(user_id))
