"""A Sparkplug B edge node: births, aliased data, deaths, and rebirth on the host's request."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from google.protobuf.message import DecodeError

from ingest.connectors import sparkplug_proto as spb
from ingest.connectors.sparkplug_devices import NAMESPACE
from workbench.mqtt import host_port, make_client

log = logging.getLogger(__name__)

MetricSpec = tuple[str, int, str | None]  # name, Sparkplug datatype, unit


class EdgeNode:
    """One edge node with devices; ``metrics`` maps device name to its metric specs."""

    def __init__(self, mqtt_url: str, group: str, node: str, metrics: dict[str, list[MetricSpec]]) -> None:
        self.group, self.node = group, node
        self.metrics = metrics
        self.seq = 0
        self.bd_seq = 0
        self.rebirths = 0
        self.born = threading.Event()
        self.values: dict[str, dict[str, Any]] = {device: {} for device in metrics}
        self._aliases: dict[tuple[str, str], int] = {}
        alias = 1
        for device, specs in metrics.items():
            for name, _, _ in specs:
                self._aliases[(device, name)] = alias
                alias += 1
        self._lock = threading.Lock()
        self._running = False
        self.mqtt_url = mqtt_url
        self.client = make_client(mqtt_url, f"spb-{group}-{node}-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._set_will()

    def topic(self, kind: str, device: str | None = None) -> str:
        """The topic of a message of ``kind`` for this node (or one of its devices)."""
        return f"{NAMESPACE}/{self.group}/{kind}/{self.node}" + (f"/{device}" if device else "")

    def _set_will(self) -> None:
        death = spb.Payload(timestamp=_now_ms())
        spb.set_metric_value(death.metrics.add(name="bdSeq"), spb.INT64, self.bd_seq)
        self.client.will_set(self.topic("NDEATH"), death.SerializeToString(), qos=1)

    def start(self) -> None:
        """Connect; the node births on every connection."""
        self.client.connect(*host_port(self.mqtt_url), keepalive=30)
        self.client.loop_start()
        self._running = True

    def stop(self, clean: bool = True) -> None:
        """Disconnect; ``clean`` publishes NDEATH first (as the broker would on an unclean drop)."""
        if not self._running:
            return
        self._running = False
        if clean:
            death = spb.Payload(timestamp=_now_ms())
            spb.set_metric_value(death.metrics.add(name="bdSeq"), spb.INT64, self.bd_seq)
            info = self.client.publish(self.topic("NDEATH"), death.SerializeToString(), qos=1)
            if self.client.is_connected():
                with contextlib.suppress(RuntimeError, ValueError):  # the broker went away first
                    info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(self.topic("NCMD"), qos=0)
        self.birth()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic != self.topic("NCMD"):
            return  # some brokers (amqtt) also hand over retained messages of topics never subscribed
        try:
            payload = spb.Payload.FromString(message.payload)
        except DecodeError:
            log.warning("node %s: undecodable NCMD ignored", self.node)
            return
        for metric in payload.metrics:
            if metric.name == "Node Control/Rebirth" and metric.boolean_value:
                self.rebirths += 1
                self.birth()

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        return seq

    def birth(self) -> None:
        """Publish NBIRTH and every DBIRTH with names, aliases, types, units and current values."""
        with self._lock:
            self.seq = 0
            nbirth = spb.Payload(timestamp=_now_ms(), seq=self._next_seq())
            spb.set_metric_value(nbirth.metrics.add(name="bdSeq"), spb.INT64, self.bd_seq)
            spb.set_metric_value(nbirth.metrics.add(name="Node Control/Rebirth"), spb.BOOLEAN, False)
            self.client.publish(self.topic("NBIRTH"), nbirth.SerializeToString(), qos=0)
            for device, specs in self.metrics.items():
                dbirth = spb.Payload(timestamp=_now_ms(), seq=self._next_seq())
                for name, datatype, unit in specs:
                    metric = dbirth.metrics.add(name=name, alias=self._aliases[(device, name)])
                    metric.timestamp = dbirth.timestamp
                    spb.set_metric_value(metric, datatype, self.values[device].get(name))
                    if unit:
                        spb.set_property(metric, "engUnit", unit)
                self.client.publish(self.topic("DBIRTH", device), dbirth.SerializeToString(), qos=0)
        self.born.set()

    def publish(self, device: str, values: dict[str, Any], timestamp_ms: int | None = None) -> None:
        """Publish DDATA for ``device`` with aliases only (as compliant nodes do after birth)."""
        specs = {name: datatype for name, datatype, _ in self.metrics[device]}
        with self._lock:
            self.values[device].update(values)
            data = spb.Payload(timestamp=timestamp_ms or _now_ms(), seq=self._next_seq())
            for name, value in values.items():
                metric = data.metrics.add(alias=self._aliases[(device, name)], timestamp=data.timestamp)
                spb.set_metric_value(metric, specs[name], value)
            self.client.publish(self.topic("DDATA", device), data.SerializeToString(), qos=0)

    def skip_sequence(self) -> None:
        """Lose one sequence number, as a dropped message would (tests and fault injection)."""
        with self._lock:
            self._next_seq()


def _now_ms() -> int:
    return int(time.time() * 1000)
