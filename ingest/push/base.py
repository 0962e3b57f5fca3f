"""The contract of a pushed protocol: where its messages arrive and how one becomes readings."""

from __future__ import annotations

from typing import Any, ClassVar

from paho.mqtt.client import topic_matches_sub

from ingest.codecs import Decoded

# Who receives a codec's messages. Built-ins have their own tuned receivers; any other codec's MQTT topics
# are subscribed by the generic listener (ingest/push/listener.py) of every ingest process.
LISTENER = "listener"
RECEIVERS = {
    LISTENER: "the generic MQTT listener, for plugin codecs",
    "ingest": "the MQTT ingest service (ingest/mqtt_ingest.py, with its fast path)",
    "http": "POST /api/v1/ingest (ingest/http.py)",
    "sparkplug": "the Sparkplug B primary host (ingest/connectors/sparkplug.py: births, aliases, sequence)",
}


class PushCodec:
    """A pushed protocol: the MQTT topic filters its messages arrive on, and ``decode``, the one verb.

    ``decode`` turns one message into readings (or a device status) and raises
    :class:`ingest.codecs.DecodeError` with the reason for a message it cannot read (the message goes to
    quarantine with that reason). It never validates: the pipeline does, for every protocol alike.
    """

    name: ClassVar[str] = ""
    topics: ClassVar[tuple[str, ...]] = ()  # MQTT topic filters; none for a protocol carried over HTTP
    receiver: ClassVar[str] = LISTENER  # see RECEIVERS

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """JSON schema of the codec's own options (none by default)."""
        return {"type": "object", "properties": {}}

    def decode(self, topic: str, payload: bytes) -> Decoded:
        """The readings (or status) of one message that arrived on ``topic`` (empty for HTTP)."""
        raise NotImplementedError

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` falls under one of this codec's topic filters."""
        return any(topic_matches_sub(pattern, topic) for pattern in self.topics)
