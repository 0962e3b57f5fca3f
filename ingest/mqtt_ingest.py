"""The MQTT side of ingest: a persistent MQTT 5 session, manual acks sent only after the commit.

A broker that refuses MQTT 5 (amqtt, the in-process broker of a machine without Mosquitto, or an old
external one) gets MQTT 3.1.1 with clean session false: still persistent, still acked after the commit,
but without shared subscriptions, session expiry or a receive maximum, so only one ingest process runs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.codecs import TOPIC_PREFIX, TOPICS, DecodeError, decode_mqtt
from ingest.fastpath import FastRows
from ingest.mqtt_client import (
    UNSUPPORTED_PROTOCOL,
    IngestClient,
    make_ingest_client,
    parse_publish,
    speaks_mqtt5,
)
from ingest.pipeline import MessageReject, Pipeline
from ingest.points import Reading
from workbench.metrics import MQTT_MESSAGES
from workbench.mqtt import host_port
from workbench.settings import SettingsError

log = logging.getLogger(__name__)

SOURCE = "mqtt"
# The broker keeps our session (subscriptions, unacked messages) this long while we are away.
SESSION_EXPIRY = 7 * 24 * 3600
# Messages decoded and submitted together: one validation pass and one work item for many messages.
DRAIN_MAX = 2000

# (PUBLISH command byte, packet body, connection generation); a paho MQTTMessage and b"" for QoS 2.
Inbound = tuple[Any, bytearray | bytes, int]
# Parsed topics kept for the fast path (devices x keys); beyond this, topics are parsed each time.
TOPIC_CACHE = 100_000
OTHER, SINGLE, MESSAGE, STRAY = 0, 1, 2, 3


class BrokerProtocolError(SettingsError):
    """The broker speaks only MQTT 3.1.1 and the settings need MQTT 5 (one line for the operator)."""


def mqtt5_only(host: str, port: int, what: str) -> BrokerProtocolError:
    """The error for ``what`` (shared subscriptions, ``--workers N``) on a broker without MQTT 5."""
    return BrokerProtocolError(
        f"the MQTT broker at {host}:{port} speaks only MQTT 3.1.1, and {what} needs MQTT 5 "
        "(Mosquitto): run one ingest process without WORKBENCH_INGEST_SHARED_GROUP"
    )


def subscriptions(shared_group: str | None) -> list[str]:
    """The topic filters to subscribe, inside ``$share/GROUP/`` when a shared group is set."""
    if shared_group:
        return [f"$share/{shared_group}/{topic}" for topic in TOPICS]
    return list(TOPICS)


class MqttIngest:
    """Subscribes (QoS 1) to device topics; paho's thread only enqueues, a decoder thread submits."""

    def __init__(
        self,
        url: str,
        pipeline: Pipeline,
        client_id: str,
        shared_group: str | None = None,
        inflight: int = 10000,
        subscribe: bool = True,
        fallback: bool = True,
    ) -> None:
        self.url = url
        self.pipeline = pipeline
        self.client_id = client_id
        self.shared_group = shared_group
        self.inflight = inflight
        self.subscribe = subscribe  # False: only resume the session and take what it holds (retire.py)
        self.fallback = fallback  # False: a broker refusing MQTT 5 is an error, not a reason for 3.1.1
        self.v5 = True  # the protocol level of the session (False: MQTT 3.1.1, see the module docstring)
        self.session_present = False
        self._inbox: deque[Inbound] = deque()
        self._inbox_cap = 4 * max(inflight, DRAIN_MAX)
        self._generation = 0
        self._connected = threading.Event()
        self._answered = threading.Event()  # connected, or refused for the protocol level
        self._subscribed = threading.Event()  # the broker confirmed the subscriptions (SUBACK)
        self._refused_v5 = False
        self._stopping = threading.Event()
        self._decoder: threading.Thread | None = None
        self._topics: dict[bytes, tuple[int, str, str, str]] = {}
        self.client = self._make_client(mqtt.MQTTv5)
        self.received = 0
        self.acked = 0
        self.taken = 0  # QoS 1/2 messages handed to the pipeline (each is acked once committed)
        self.arrived = 0  # messages put in the inbox (the decoder may hold some not yet received)

    def _make_client(self, protocol: mqtt.MQTTProtocolVersion) -> IngestClient:
        client = make_ingest_client(self.url, self.client_id, protocol)
        client.manual_ack_set(True)
        client.on_publish_raw = self._on_raw
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(1, 10)
        return client

    def start(self, timeout: float = 10.0) -> None:
        """Connect (resuming the persistent session) and start the decoder.

        MQTT 5 first; a broker that refuses it in its CONNACK gets MQTT 3.1.1 (see the module docstring).
        """
        host, port = host_port(self.url)
        # amqtt misreads an MQTT 5 CONNECT that carries properties and never answers it: a bare one asks
        # first (a few milliseconds once per start). A refusal in the real CONNACK is handled the same way.
        if not self.fallback or speaks_mqtt5(self.url, min(timeout, 5.0)) is not False:
            self._connect(timeout)
        else:
            self._refused_v5 = True
        if self._refused_v5:
            self.client.loop_stop()
            if not self.fallback:
                raise ConnectionError(f"MQTT broker at {host}:{port} does not speak MQTT 5")
            if self.shared_group:
                raise mqtt5_only(host, port, f"the shared group {self.shared_group!r}")
            log.info(
                "MQTT broker at %s:%s speaks MQTT 3.1.1 only: ingest uses it (persistent session, acks after "
                "the commit) without shared subscriptions, session expiry or receive maximum, so only one "
                "ingest process may run; Mosquitto is recommended",
                host,
                port,
            )
            self.v5 = False
            self.client = self._make_client(mqtt.MQTTv311)
            self._connect(timeout)
        if not self._connected.is_set():
            self.client.loop_stop()
            raise ConnectionError(f"MQTT broker at {host}:{port} did not accept the ingest session")
        # A new session receives nothing published before its SUBACK (amqtt adds subscriptions a beat late).
        if self.subscribe and not self._subscribed.wait(timeout):
            log.warning("MQTT broker at %s:%s has not confirmed the ingest subscriptions yet", host, port)
        if self._decoder is None:
            self._decoder = threading.Thread(
                target=self._decode_loop, name="ingest-mqtt-decoder", daemon=True
            )
            self._decoder.start()

    def _connect(self, timeout: float) -> None:
        """Connect in paho's thread and wait for the broker's answer (or ``timeout``)."""
        self._answered.clear()
        self._subscribed.clear()
        self._refused_v5 = False
        host, port = host_port(self.url)
        properties = None
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY
            properties.ReceiveMaximum = max(1, min(self.inflight, 65535))
        self.client.connect_async(host, port, keepalive=30, clean_start=False, properties=properties)
        self.client.loop_start()
        self._answered.wait(timeout)

    def pause(self) -> None:
        """Stop handing messages to the pipeline (the connection stays up so commits can still ack)."""
        self._stopping.set()
        if self._decoder is not None:
            self._decoder.join(5)

    def stop(self) -> None:
        """Disconnect; messages not yet committed stay unacknowledged and the broker keeps them."""
        self.pause()
        self.client.disconnect()
        self.client.loop_stop()

    def end_session(self) -> None:
        """Disconnect with session expiry 0: the broker forgets the session and anything still queued."""
        self.pause()
        if not self.v5:  # MQTT 3.1.1 has no expiry: its sessions end at a clean-session connect
            raise RuntimeError("end_session needs an MQTT 5 session")
        properties = Properties(PacketTypes.DISCONNECT)
        properties.SessionExpiryInterval = 0
        self.client.disconnect(properties=properties)
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        """Whether the session's connection is up."""
        return self._connected.is_set()

    @property
    def settled(self) -> bool:
        """Whether every message taken so far has been committed and acknowledged."""
        received = self.received  # read first: ``taken`` grows before it, ``arrived`` before both
        return self.arrived == received and self.acked >= self.taken

    def health(self) -> dict[str, Any]:
        """Health details; raises while disconnected."""
        if not self._connected.is_set():
            raise ConnectionError("ingest MQTT session disconnected")
        return {
            "received": self.received,
            "acked": self.acked,
            "backlog": len(self._inbox),
            "shared_group": self.shared_group,
            "protocol": "5" if self.v5 else "3.1.1",
        }

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            if self.v5 and reason.value == UNSUPPORTED_PROTOCOL:
                self._refused_v5 = True  # ``start`` retries at MQTT 3.1.1 (or reports it)
                self._answered.set()
                return
            log.error("MQTT ingest connection refused: %s", reason)
            return
        self._generation += 1
        self.session_present = bool(flags.session_present)
        if self.subscribe:
            client.subscribe([(topic, 1) for topic in subscriptions(self.shared_group)])
        self._connected.set()
        self._answered.set()
        log.log(
            logging.INFO if self.subscribe else logging.DEBUG,  # retire.py probes log their own outcome
            "MQTT ingest connected as %s (session present: %s)",
            self.client_id,
            flags.session_present,
        )

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.error("MQTT broker refused ingest subscriptions: %s", ", ".join(refused))
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        # Messages of the old connection are redelivered; acking their ids on the new one would be wrong.
        self._generation += 1
        if not self._stopping.is_set() and not self._refused_v5:
            log.warning("MQTT ingest disconnected: %s", reason)

    def _on_raw(self, command: int, body: bytes | bytearray) -> None:
        # paho's network thread does only this: the decoder thread parses and decodes in bulk. QoS 1
        # traffic is bounded by the receive maximum; a QoS 0 flood is held back here (TCP backpressure).
        while len(self._inbox) > self._inbox_cap and not self._stopping.is_set():
            time.sleep(0.005)
        self._inbox.append((command, body, self._generation))
        self.arrived += 1

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Only what paho handles itself (QoS 2, downgraded by our QoS 1 subscriptions) arrives here.
        self._inbox.append((message, b"", self._generation))
        self.arrived += 1

    def _decode_loop(self) -> None:
        inbox = self._inbox
        while not self._stopping.is_set():
            if not inbox:
                time.sleep(0.002)
                continue
            batch: list[Inbound] = []
            while inbox and len(batch) < DRAIN_MAX:
                batch.append(inbox.popleft())
            try:
                self._submit(batch)
            except Exception:  # a bug here must not stop ingest; the messages stay unacked and return
                log.exception("MQTT decode failed for %d messages", len(batch))

    def _submit(self, batch: list[Inbound]) -> None:
        fast = FastRows(self.pipeline.validator)
        readings: list[Reading] = []
        rejects: list[MessageReject] = []
        statuses: list[tuple[str, str]] = []
        acks: dict[int, list[int]] = {}
        taken = 0
        topics = self._topics
        v5 = self.v5
        for command, body, generation in batch:
            if isinstance(command, mqtt.MQTTMessage):
                raw_topic, mid, payload, qos = (
                    command._topic,
                    command.mid,
                    bytes(command.payload),
                    command.qos,
                )
            else:
                try:
                    raw_topic, mid, payload = parse_publish(command, body, v5)
                except IndexError:  # a broker never sends this; without a packet id it cannot be acked
                    log.error("malformed PUBLISH packet from the broker (%d bytes) ignored", len(body))
                    continue
                qos = (command >> 1) & 3
            if qos:  # QoS 2 (never granted by our subscriptions) is acked apart, as PUBCOMP
                taken += 1
                acks.setdefault(generation if qos == 1 else -generation, []).append(mid)
            route = topics.get(raw_topic)
            if route is None:
                route = _route(raw_topic)
                if len(topics) < TOPIC_CACHE:
                    topics[raw_topic] = route
            kind, device, key, topic = route
            if kind == STRAY:
                # Outside every filter we subscribe: amqtt sends a connecting client the retained messages
                # of other clients' subscriptions (device config, Sparkplug STATE). Not a device's fault.
                log.debug("message on unsubscribed topic %r ignored", topic[:200])
                continue
            if kind == SINGLE:
                if fast.single(device, key, payload):
                    continue
            elif kind == MESSAGE and fast.message(device, payload):
                continue
            try:
                decoded = decode_mqtt(topic, payload)
            except DecodeError as error:
                rejects.append(MessageReject(str(error), payload, topic, _device_of(topic)))
            else:
                if decoded.status is not None:
                    if _is_uuid(decoded.status[0]):
                        statuses.append(decoded.status)
                    else:
                        reason = f"device id must be a UUID, got {decoded.status[0][:80]!r}"
                        rejects.append(MessageReject(reason, payload, topic, _device_of(topic)))
                elif decoded.readings:
                    readings.extend(decoded.readings)
                else:  # a well-formed message with nothing in it still leaves a trace
                    rejects.append(
                        MessageReject("message carries no readings", payload, topic, _device_of(topic))
                    )
        self.taken += taken
        self.received += len(batch)
        MQTT_MESSAGES.labels("telemetry").inc(len(batch))
        self.pipeline.submit(
            readings, SOURCE, self._acker(acks), rejects=rejects, statuses=statuses, rows=fast.rows
        )

    def _acker(self, acks: dict[int, list[int]]) -> Callable[[], None] | None:
        if not acks:
            return None

        def ack() -> None:
            # Packet ids of an earlier connection mean nothing on this one: the broker redelivers those.
            generation = self._generation
            mids = acks.get(generation)
            if mids:
                self.client.ack_many(mids)
                self.acked += len(mids)
            for mid in acks.get(-generation, ()):
                self.client.ack(mid, 2)
                self.acked += 1

        return ack


def _route(raw_topic: bytes) -> tuple[int, str, str, str]:
    """(kind, device text, key, topic text) of a topic; the fast path needs kind SINGLE or MESSAGE.

    STRAY: no filter of ``TOPICS`` matches it, so no broker should have sent it (see ``_submit``).
    """
    topic = raw_topic.decode("utf-8", "replace")
    if topic.startswith(TOPIC_PREFIX):
        parts = topic[len(TOPIC_PREFIX) :].split("/")
        if len(parts) == 2 and parts[1] == "telemetry":
            return MESSAGE, parts[0], "", topic
        if len(parts) == 3 and parts[1] == "telemetry":
            return SINGLE, parts[0], parts[2], topic
        if len(parts) == 2 and parts[1] == "status":
            return OTHER, "", "", topic
    return STRAY, "", "", topic


def _device_of(topic: str) -> str | None:
    parts = topic.split("/")
    return parts[2][:100] if len(parts) > 2 else None


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
