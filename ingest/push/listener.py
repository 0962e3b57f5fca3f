"""The generic receiver of plugin codecs: one MQTT session subscribing their topics, decoding by topic.

Built-in protocols have their own receivers (``PushCodec.receiver``); a plugin codec needs none of its own:
its messages come here, are decoded by its ``decode`` and go through the same pipeline (validation,
quarantine, the batch writer), acknowledged once committed. One ingest process runs it (the first worker).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from ingest.codecs import DecodeError
from ingest.pipeline import MessageReject, Pipeline
from ingest.push.base import PushCodec
from workbench.mqtt import host_port, make_client

log = logging.getLogger(__name__)


class PushListener:
    """Subscribes the topics of ``codecs`` on the broker at ``mqtt_url`` and feeds ``pipeline``."""

    def __init__(self, mqtt_url: str, pipeline: Pipeline, codecs: list[PushCodec], client_id: str) -> None:
        self.mqtt_url = mqtt_url
        self.pipeline = pipeline
        self.codecs = codecs
        self.received = 0
        self.rejected = 0
        self.subscribed = False  # the broker confirmed the subscriptions
        self._client = make_client(mqtt_url, f"{client_id}-push-{uuid.uuid4().hex[:6]}")
        self._client.manual_ack_set(True)  # acknowledged once the pipeline committed the message
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def start(self) -> None:
        """Connect (retrying in the background) and start the network thread."""
        self._client.connect_async(*host_port(self.mqtt_url), keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread (unacknowledged messages are redelivered next time)."""
        self._client.disconnect()
        self._client.loop_stop()

    def health(self) -> dict[str, Any]:
        """The codecs listened for, and messages received and undecodable, for ``/healthz``."""
        codecs = [codec.name for codec in self.codecs]
        return {"codecs": codecs, "received": self.received, "undecodable": self.rejected}

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("push listener: broker refused: %s", reason)
            return
        client.subscribe([(topic, 1) for codec in self.codecs for topic in codec.topics])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self.subscribed = True

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        topic, payload = message.topic, bytes(message.payload)
        codec = next((c for c in self.codecs if c.matches(topic)), None)
        if codec is None:  # a retained message of another client's filter (amqtt): not ours
            client.ack(message.mid, message.qos)
            return
        rejects: list[MessageReject] = []
        readings, statuses = [], []
        try:
            decoded = codec.decode(topic, payload)
        except DecodeError as error:
            self.rejected += 1
            rejects.append(MessageReject(str(error), payload, topic))
        else:
            readings = decoded.readings
            statuses = [decoded.status] if decoded.status is not None else []
            if not readings and not statuses:
                rejects.append(MessageReject("message carries no readings", payload, topic))

        def ack() -> None:
            client.ack(message.mid, message.qos)

        try:
            self.pipeline.submit(readings, codec.name, ack, rejects=rejects, statuses=statuses)
        except Exception:  # not acknowledged: the broker redelivers it
            log.exception("push listener: %s message on %s not taken", codec.name, topic[:200])
