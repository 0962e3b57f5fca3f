"""Codecs: MQTT topics and payloads, and HTTP JSON documents, turned into readings (never validated here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ingest.points import Reading

TOPIC_PREFIX = "insa/devices/"
# The MQTT topic filters of the design's messages (what the MQTT ingest service subscribes).
TOPICS = ("insa/devices/+/telemetry", "insa/devices/+/telemetry/+", "insa/devices/+/status")
STATUSES = frozenset({"online", "offline", "error"})


class DecodeError(ValueError):
    """A message that cannot be decoded into readings; the message is the quarantine reason."""


@dataclass
class Decoded:
    """What one message carried: readings, or a device status."""

    readings: list[Reading] = field(default_factory=list)
    status: tuple[str, str] | None = None


def decode_mqtt(topic: str, payload: bytes) -> Decoded:
    """Decode one MQTT message of the design's topics; raises DecodeError with the reason."""
    if not topic.startswith(TOPIC_PREFIX):
        raise DecodeError(f"topic {topic[:200]!r} is not under {TOPIC_PREFIX}")
    parts = topic[len(TOPIC_PREFIX) :].split("/")
    device = parts[0]
    if len(parts) == 2 and parts[1] == "telemetry":
        return Decoded(readings=message_readings(_json(payload), device))
    if len(parts) == 3 and parts[1] == "telemetry":
        return Decoded(readings=[_single(payload, device, parts[2])])
    if len(parts) == 2 and parts[1] == "status":
        return Decoded(status=(device, _status(payload)))
    raise DecodeError(f"topic {topic[:200]!r} is not insa/devices/ID/telemetry[/KEY] or /status")


def _json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise DecodeError(f"payload is not JSON: {error}") from None


def _single(payload: bytes, device: str, key: str) -> Reading:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        # A bare word (for a key declared text) arrives unquoted from simple devices.
        try:
            body = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise DecodeError("payload is neither JSON nor UTF-8 text") from None
    if isinstance(body, dict):
        return Reading(
            device, key, body.get("value"), body.get("timestamp"), body.get("unit"), body.get("quality")
        )
    return Reading(device, key, body)


def _status(payload: bytes) -> str:
    text = payload.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            body = None
        text = str(body.get("status", "")) if isinstance(body, dict) else ""
    status = text.strip('"').lower()
    if status not in STATUSES:
        raise DecodeError(f"status must be one of {', '.join(sorted(STATUSES))}, got {text[:40]!r}")
    return status


def message_readings(body: Any, device: Any) -> list[Reading]:
    """Readings of the design's JSON message ``{timestamp, telemetry: {key: {value, unit}}, metadata}``."""
    if not isinstance(body, dict):
        raise DecodeError("message must be a JSON object with a 'telemetry' object")
    telemetry = body.get("telemetry")
    if not isinstance(telemetry, dict) or not telemetry:
        raise DecodeError("message has no 'telemetry' object with at least one key")
    stated = body.get("device_id")
    if device is None:
        device = stated
    elif stated is not None and str(stated).lower() != str(device).lower():
        raise DecodeError(f"device_id {str(stated)[:60]!r} in the body differs from the topic's")
    stamp = body.get("timestamp")
    meta = body.get("metadata")
    quality = None
    extra: dict[str, Any] | None = None
    if isinstance(meta, dict):
        quality = meta.get("quality")
        extra = {k: v for k, v in meta.items() if k != "quality"} or None
    elif meta is not None:
        raise DecodeError("metadata must be an object")
    readings = []
    for key, item in telemetry.items():
        if isinstance(item, dict):
            readings.append(
                Reading(
                    device,
                    key,
                    item.get("value"),
                    item.get("timestamp", stamp),
                    item.get("unit"),
                    item.get("quality", quality),
                    extra,
                )
            )
        else:
            readings.append(Reading(device, key, item, stamp, None, quality, extra))
    return readings


def document_readings(body: Any, default_device: Any = None) -> list[Reading]:
    """Readings of an HTTP document: one point, the design's message, or a JSON array of either."""
    items = body if isinstance(body, list) else [body]
    readings: list[Reading] = []
    for item in items:
        if not isinstance(item, dict):
            raise DecodeError("each item must be a JSON object (a point or a message)")
        device = item.get("device_id", default_device)
        if "telemetry" in item:
            readings.extend(message_readings(item, device))
        elif "key" in item:
            readings.append(
                Reading(
                    device,
                    item.get("key"),
                    item.get("value"),
                    item.get("timestamp"),
                    item.get("unit"),
                    item.get("quality"),
                    item.get("metadata") if isinstance(item.get("metadata"), dict) else None,
                )
            )
        else:
            raise DecodeError("an item needs 'key' and 'value' (a point) or 'telemetry' (a message)")
    return readings
