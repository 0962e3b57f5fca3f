"""Sparkplug B primary host: decodes ``spBv1.0/#`` births, data and deaths into readings and device state."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine

from ingest.codecs import DecodeError
from ingest.connectors import sparkplug_proto as spb
from ingest.connectors.base import ConnectorStats, ReadingSink, StatusSetter, device_status_setter
from ingest.connectors.sparkplug_devices import NAMESPACE, device_path, metric_key, register
from ingest.pipeline import MessageReject
from ingest.points import Reading
from ingest.push.sparkplug_b import is_reading, metric_reading, parse
from workbench.mqtt import host_port, make_client

log = logging.getLogger(__name__)

SOURCE = "sparkplug"
REBIRTH_METRIC = "Node Control/Rebirth"
# A node that keeps sending out of order gets one rebirth request per this many seconds, not one per message.
REBIRTH_MIN_INTERVAL_S = 5.0


@dataclass
class Entity:
    """A born node or device: its row, its alias table and metric catalogue."""

    device_id: uuid.UUID | str
    aliases: dict[int, str] = field(default_factory=dict)
    catalogue: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class NodeState:
    """What the host knows about one edge node between its birth and death."""

    node: Entity
    seq: int
    bd_seq: int | None = None
    devices: dict[str, Entity] = field(default_factory=dict)
    last_rebirth_request: float = 0.0


class SparkplugHost:
    """The platform as a Sparkplug B primary host application on one broker."""

    def __init__(
        self,
        engine: Engine,
        sink: ReadingSink,
        mqtt_url: str,
        host_id: str = "workbench",
        auto_register: bool = True,
        status_setter: StatusSetter | None = None,
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.mqtt_url = mqtt_url
        self.host_id = host_id
        self.auto_register = auto_register
        self.set_status = status_setter or device_status_setter(engine)
        self.stats = ConnectorStats(protocol=SOURCE)
        self.rebirth_requests = 0
        self.nodes: dict[tuple[str, str], NodeState] = {}
        self._lock = threading.Lock()
        self._client = make_client(mqtt_url, f"workbench-spb-{host_id}-{uuid.uuid4().hex[:6]}")
        self._client.will_set(self.state_topic, self._state_payload(False), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    @property
    def state_topic(self) -> str:
        """Where this host announces itself (Sparkplug 3.0 ``STATE``)."""
        return f"{NAMESPACE}/STATE/{self.host_id}"

    def start(self) -> None:
        """Connect (retrying in the background) and start the network thread."""
        self._client.connect_async(*host_port(self.mqtt_url), keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Announce offline, disconnect and stop the network thread."""
        info = self._client.publish(self.state_topic, self._state_payload(False), qos=1, retain=True)
        if self._client.is_connected():
            info.wait_for_publish(2)
        self._client.disconnect()
        self._client.loop_stop()
        self.stats.state = "stopped"

    def health(self) -> dict[str, Any]:
        """Counters and the number of born nodes, for ``/healthz``."""
        return {**self.stats.as_dict(), "nodes": len(self.nodes), "rebirth_requests": self.rebirth_requests}

    def _state_payload(self, online: bool) -> str:
        return json.dumps({"online": online, "timestamp": int(time.time() * 1000)})

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.stats.failed(f"broker refused: {reason}")
            return
        self.stats.state = "connected"
        client.subscribe(f"{NAMESPACE}/#", qos=1)
        client.publish(self.state_topic, self._state_payload(True), qos=1, retain=True)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.stats.state != "stopped":
            self.stats.state = "reconnecting"
            self.stats.reconnects += 1

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self.handle(message.topic, message.payload)
        except Exception as error:  # one bad message must not stop the host
            log.exception("sparkplug message on %s failed", message.topic)
            self.stats.failed(error)

    def handle(self, topic: str, payload: bytes | bytearray) -> None:
        """Process one message of the Sparkplug namespace."""
        parts = topic.split("/")
        if len(parts) < 3 or parts[0] != NAMESPACE or parts[1] == "STATE":
            if parts[1:2] == ["STATE"] and parts[2:3] == [self.host_id] and b'"online": false' in payload:
                # Another session (or our own will) said we are offline while we run: correct it.
                self._client.publish(self.state_topic, self._state_payload(True), qos=1, retain=True)
            return
        if len(parts) not in (4, 5):
            return
        group, kind, node = parts[1], parts[2], parts[3]
        device = parts[4] if len(parts) == 5 else None
        if kind.endswith("CMD"):
            return  # commands (ours included) are not telemetry
        try:
            message = parse(payload)
        except DecodeError as error:
            self._quarantine(topic, bytes(payload), str(error))
            return
        with self._lock:
            handler = {
                "NBIRTH": self._nbirth,
                "DBIRTH": self._dbirth,
                "NDATA": self._data,
                "DDATA": self._data,
                "NDEATH": self._ndeath,
                "DDEATH": self._ddeath,
            }.get(kind)
            if handler is not None:
                handler(group, node, device, message)

    def _quarantine(self, topic: str, payload: bytes, reason: str) -> None:
        """Keep an undecodable message in quarantine (through the pipeline) with its topic and reason."""
        self.stats.failed(reason)
        try:
            self.sink.submit([], SOURCE, rejects=[MessageReject(reason, payload, topic)])  # type: ignore[call-arg]
        except TypeError:  # a sink without quarantine (tools, unit tests): the log is the record
            log.warning("sparkplug message on %s dropped: %s", topic, reason)

    def _catalogue(self, message: Any) -> tuple[dict[int, str], dict[str, dict[str, Any]]]:
        aliases: dict[int, str] = {}
        catalogue: dict[str, dict[str, Any]] = {}
        for metric in message.metrics:
            if not metric.name:
                continue
            props = spb.metric_properties(metric)
            entry: dict[str, Any] = {"key": metric_key(metric.name), "datatype": metric.datatype}
            if metric.HasField("alias"):
                aliases[metric.alias] = metric.name
                entry["alias"] = metric.alias
            if props.get("engUnit"):
                entry["unit"] = str(props["engUnit"])
            catalogue[metric.name] = entry
        return aliases, catalogue

    def _nbirth(self, group: str, node: str, device: str | None, message: Any) -> None:
        aliases, catalogue = self._catalogue(message)
        path = device_path(group, node)
        row = register(self.engine, path, catalogue, self.auto_register, is_node=True)
        self._registered(row)
        bd_seq = next((int(m.long_value) for m in message.metrics if m.name == "bdSeq"), None)
        state = NodeState(node=Entity(row or path, aliases, catalogue), seq=int(message.seq), bd_seq=bd_seq)
        self.nodes[(group, node)] = state
        self._emit(state.node, message, birth=True)

    def _dbirth(self, group: str, node: str, device: str | None, message: Any) -> None:
        state = self._in_sequence(group, node, message)
        if state is None or device is None:
            return
        aliases, catalogue = self._catalogue(message)
        path = device_path(group, node, device)
        row = register(self.engine, path, catalogue, self.auto_register, is_node=False)
        self._registered(row)
        entity = Entity(row or path, aliases, catalogue)
        state.devices[device] = entity
        self._emit(entity, message, birth=True)

    def _registered(self, device_id: uuid.UUID | None) -> None:
        """Make a birth's registration (new row or new text keys) visible to the pipeline's next lookup."""
        directory = getattr(self.sink, "directory", None)
        if device_id is not None and directory is not None:
            directory.changed(device_id)

    def _data(self, group: str, node: str, device: str | None, message: Any) -> None:
        state = self._in_sequence(group, node, message)
        if state is None:
            return
        entity = state.node if device is None else state.devices.get(device)
        if entity is None:
            self._request_rebirth(group, node, state)  # data from a device we never saw born
            return
        self._emit(entity, message, birth=False)

    def _ndeath(self, group: str, node: str, device: str | None, message: Any) -> None:
        state = self.nodes.get((group, node))
        if state is None:
            return
        bd_seq = next((int(m.long_value) for m in message.metrics if m.name == "bdSeq"), None)
        if state.bd_seq is not None and bd_seq is not None and bd_seq != state.bd_seq:
            return  # the death of an older session: the current one is alive
        del self.nodes[(group, node)]
        for entity in [state.node, *state.devices.values()]:
            if isinstance(entity.device_id, uuid.UUID):
                self.set_status(entity.device_id, "offline")

    def _ddeath(self, group: str, node: str, device: str | None, message: Any) -> None:
        state = self._in_sequence(group, node, message)
        if state is None or device is None:
            return
        entity = state.devices.pop(device, None)
        if entity is not None and isinstance(entity.device_id, uuid.UUID):
            self.set_status(entity.device_id, "offline")

    def _in_sequence(self, group: str, node: str, message: Any) -> NodeState | None:
        """The node's state when known; a gap or an unknown node triggers a rebirth request."""
        state = self.nodes.get((group, node))
        if state is None:
            self._request_rebirth(group, node, None)
            return None
        seq = int(message.seq)
        expected = (state.seq + 1) % 256
        state.seq = seq
        if seq != expected:
            log.warning(
                "sparkplug %s/%s: seq %s, expected %s; requesting rebirth", group, node, seq, expected
            )
            self._request_rebirth(group, node, state)
        return state

    def send_command(
        self, group: str, node: str, device: str | None, metric: str, datatype: int, value: Any
    ) -> str:
        """Publish one typed metric as NCMD (node) or DCMD (device); returns the topic (QoS 0, no answer)."""
        if not self._client.is_connected():
            raise ConnectionError("the Sparkplug host is not connected to the broker")
        payload = spb.Payload(timestamp=int(time.time() * 1000))
        spb.set_metric_value(payload.metrics.add(name=metric, timestamp=payload.timestamp), datatype, value)
        topic = f"{NAMESPACE}/{group}/{'DCMD' if device else 'NCMD'}/{node}" + (
            f"/{device}" if device else ""
        )
        self._client.publish(topic, payload.SerializeToString(), qos=0)
        return topic

    def _request_rebirth(self, group: str, node: str, state: NodeState | None) -> None:
        now = time.monotonic()
        if state is not None:
            if now - state.last_rebirth_request < REBIRTH_MIN_INTERVAL_S:
                return
            state.last_rebirth_request = now
        payload = spb.Payload(timestamp=int(time.time() * 1000))
        metric = payload.metrics.add(name=REBIRTH_METRIC, timestamp=payload.timestamp)
        spb.set_metric_value(metric, spb.BOOLEAN, True)
        self._client.publish(f"{NAMESPACE}/{group}/NCMD/{node}", payload.SerializeToString(), qos=0)
        self.rebirth_requests += 1

    def _emit(self, entity: Entity, message: Any, birth: bool) -> None:
        readings: list[Reading] = []
        for metric in message.metrics:
            alias_name = entity.aliases.get(metric.alias) if metric.HasField("alias") else None
            name = metric.name or alias_name
            if name and is_reading(name, metric, birth):
                info = entity.catalogue.get(name, {})
                readings.append(metric_reading(entity.device_id, name, metric, message, info))
        if readings:
            self.sink.submit(readings, SOURCE)
            self.stats.delivered(len(readings))
