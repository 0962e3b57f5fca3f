"""Sparkplug B: protobuf payloads on ``spBv1.0/{group}/{kind}/{node}[/{device}]``.

The primary host (:mod:`ingest.connectors.sparkplug`) receives them: it keeps each node's births (aliases,
units, types) and sequence, and decodes through :func:`parse` and :func:`metric_reading` here. The codec's
own ``decode`` is the stateless part: a message read alone, with metrics named (births, or data sent
without aliases), the device named by its Sparkplug path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError as ProtobufError

from ingest.codecs import Decoded, DecodeError
from ingest.connectors import sparkplug_proto as spb
from ingest.connectors.sparkplug_devices import NAMESPACE, device_path, metric_key
from ingest.points import Reading
from ingest.push.base import PushCodec
from ingest.push.registry import register

# Ignition's quality codes, the de facto convention for a metric's "Quality" property.
QUALITY = {192: 100, 64: 50, 0: 0}
TELEMETRY = {"NBIRTH", "DBIRTH", "NDATA", "DDATA"}


def parse(payload: bytes | bytearray) -> Any:
    """The Sparkplug B ``Payload`` message of ``payload``; DecodeError when it is not one."""
    try:
        return spb.Payload.FromString(bytes(payload))
    except ProtobufError as error:
        raise DecodeError(f"not a Sparkplug B payload: {error}") from None


def is_reading(name: str | None, metric: Any, birth: bool) -> bool:
    """Whether a metric (by its resolved name) carries telemetry: not the session's own bookkeeping."""
    if not name or name == "bdSeq" or name.startswith(("Node Control/", "Device Control/")):
        return False
    # A null in a birth declares the metric; it is not a reading.
    return not (birth and (metric.is_historical or metric.is_null))


def metric_reading(device: Any, name: str, metric: Any, message: Any, info: dict[str, Any]) -> Reading:
    """The reading of one metric of ``message`` (``info``: what the birth said of it: key, type, unit)."""
    datatype = metric.datatype or info.get("datatype", 0)
    if not metric.datatype and datatype:
        metric.datatype = datatype  # DATA messages may omit the type; signedness needs it
    props = spb.metric_properties(metric)
    quality = QUALITY.get(int(props["Quality"]), 50) if "Quality" in props else 100
    stamp = metric.timestamp or message.timestamp
    return Reading(
        device_id=device,
        key=info.get("key") or metric_key(name),
        value=spb.metric_value(metric),
        timestamp=datetime.fromtimestamp(stamp / 1000, UTC) if stamp else None,
        unit=props.get("engUnit") or info.get("unit"),
        quality=quality,
    )


@register
class SparkplugCodec(PushCodec):
    """Sparkplug B births and data (received by the primary host, which adds aliases and sequence)."""

    name = "sparkplug-b"
    topics = (f"{NAMESPACE}/#",)
    receiver = "sparkplug"

    def decode(self, topic: str, payload: bytes) -> Decoded:
        """Readings of the named metrics of a birth or data message; nothing for other message kinds."""
        parts = topic.split("/")
        if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[2] not in TELEMETRY:
            return Decoded()
        message = parse(payload)
        birth = parts[2].endswith("BIRTH")
        device = device_path(parts[1], parts[3], parts[4] if len(parts) == 5 else None)
        return Decoded(
            readings=[
                metric_reading(device, metric.name, metric, message, {})
                for metric in message.metrics
                if is_reading(metric.name, metric, birth)
            ]
        )
