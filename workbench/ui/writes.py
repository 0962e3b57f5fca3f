"""Writes the UI makes: device config and commands (alerts change via ``workbench.rules.alerts.change``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from workbench.db.tables import devices
from workbench.platform import Platform


def save_device_config(platform: Platform, device_id: str, config: dict[str, Any]) -> None:
    """Store the device's config and, with a broker, publish it retained (design §6.1)."""
    with platform.engine.begin() as conn:
        conn.execute(
            update(devices)
            .where(devices.c.id == uuid.UUID(device_id))
            .values(config=config, updated_at=datetime.now(UTC))
        )
    if platform.mqtt is not None:
        platform.mqtt.publish(f"insa/devices/{device_id}/config", config, retain=True)


def send_command(
    platform: Platform, device_id: str, name: str, parameters: dict[str, Any], sender: str
) -> None:
    """Publish a command to the device (design §6.1); fails when no broker is connected."""
    if platform.mqtt is None:
        raise ConnectionError("no MQTT broker connected: commands cannot be sent")
    body = {
        "command": name,
        "parameters": parameters,
        "sent_by": sender,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    platform.mqtt.publish(f"insa/devices/{device_id}/command", body)
