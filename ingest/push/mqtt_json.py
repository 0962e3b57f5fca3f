"""MQTT JSON, the design's topics ``insa/devices/{id}/telemetry[/{key}]`` and ``/status``."""

from __future__ import annotations

from ingest.codecs import TOPIC_PREFIX, TOPICS, Decoded, decode_mqtt
from ingest.push.base import PushCodec
from ingest.push.registry import register


@register
class MqttJsonCodec(PushCodec):
    """The design's JSON messages, single values and status words (received by the MQTT ingest service)."""

    name = "mqtt-json"
    topics = TOPICS
    receiver = "ingest"

    def matches(self, topic: str) -> bool:
        """Anything under ``insa/devices/`` (``decode`` says what is wrong with a topic off the filters)."""
        return topic.startswith(TOPIC_PREFIX)

    def decode(self, topic: str, payload: bytes) -> Decoded:
        """See :func:`ingest.codecs.decode_mqtt` (the ingest service's fast path reads the same formats)."""
        return decode_mqtt(topic, payload)
