"""How simulated devices report: MQTT JSON, Sparkplug B, HTTP, and Modbus/OPC-UA servers for connectors."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from typing import Any, Protocol

from ingest.connectors import sparkplug_proto as spb
from ingest.connectors.modbus_codec import Entry
from ingest.simulator.modbus_server import ModbusServer
from ingest.simulator.model import UNITS, Sample
from ingest.simulator.opcua_server import OpcUaServer
from ingest.simulator.sparkplug_node import EdgeNode, MetricSpec
from workbench.mqtt import host_port, login_url, make_client

log = logging.getLogger(__name__)


class Transport(Protocol):
    """One way out for a set of simulated devices."""

    devices: set[str]

    def prime(self, now: datetime, sample: Sample) -> None:
        """Set initial values before ``start`` (servers and births then never show placeholders)."""

    def start(self) -> None:
        """Connect or start serving."""

    def send(self, now: datetime, sample: Sample) -> None:
        """Report the values of this transport's devices."""

    def stop(self) -> None:
        """Disconnect or stop serving."""


def design_message(
    now: datetime, device_id: uuid.UUID, values: dict[str, float], source: str
) -> dict[str, Any]:
    """The design's JSON telemetry message (§6.2)."""
    return {
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "device_id": str(device_id),
        "telemetry": {key: {"value": round(v, 4), "unit": UNITS.get(key)} for key, v in values.items()},
        "metadata": {"quality": 100, "source": source},
    }


class MqttJson:
    """Publishes the design's JSON message on ``insa/devices/{id}/telemetry`` (QoS 1) and online status.

    Each device has its own connection, logged in with its id and API key (``keys``), as a real one would.
    """

    def __init__(self, mqtt_url: str, ids: dict[str, uuid.UUID], keys: dict[str, str]) -> None:
        self.ids = ids
        self.devices = set(ids)
        self.mqtt_url = mqtt_url
        self.clients = {
            name: make_client(login_url(mqtt_url, str(device_id), keys[name]), f"simulator-{device_id}")
            for name, device_id in ids.items()
        }
        self.sent = 0

    def prime(self, now: datetime, sample: Sample) -> None:
        """Nothing to prepare: messages carry their values."""

    def start(self) -> None:
        """Connect and announce every device online."""
        for name, client in self.clients.items():
            client.connect_async(*host_port(self.mqtt_url), keepalive=30)  # retried until the login works
            client.loop_start()
            client.publish(f"insa/devices/{self.ids[name]}/status", "online", qos=1, retain=True)

    def send(self, now: datetime, sample: Sample) -> None:
        """Publish one message per device present in ``sample``."""
        for name, device_id in self.ids.items():
            if name in sample:
                payload = json.dumps(design_message(now, device_id, sample[name], "simulator"))
                self.clients[name].publish(f"insa/devices/{device_id}/telemetry", payload, qos=1)
                self.sent += 1

    def stop(self) -> None:
        """Announce offline and disconnect."""
        for name, client in self.clients.items():
            client.publish(f"insa/devices/{self.ids[name]}/status", "offline", qos=1, retain=True)
            client.disconnect()
            client.loop_stop()


class Sparkplug:
    """One Sparkplug B edge node whose devices are the simulated ones."""

    def __init__(
        self, mqtt_url: str, group: str, node: str, keys: dict[str, list[str]], node_key: str
    ) -> None:
        self.devices = set(keys)
        metrics: dict[str, list[MetricSpec]] = {
            device: [(key, spb.DOUBLE, UNITS.get(key)) for key in device_keys]
            for device, device_keys in keys.items()
        }
        self.node = EdgeNode(login_url(mqtt_url, node, node_key), group, node, metrics)  # logs in as the node

    def prime(self, now: datetime, sample: Sample) -> None:
        """The values the first DBIRTH carries."""
        for device, values in sample.items():
            self.node.values[device].update(values)

    def start(self) -> None:
        """Connect; the node births its devices."""
        self.node.start()

    def send(self, now: datetime, sample: Sample) -> None:
        """DDATA per device present in ``sample``."""
        stamp = int(now.timestamp() * 1000)
        for device in self.devices:
            if device in sample:
                self.node.publish(device, sample[device], stamp)

    def stop(self) -> None:
        """NDEATH and disconnect."""
        self.node.stop()


class Http:
    """POSTs the design's JSON message to ``/api/v1/telemetry`` with each device's ``X-API-Key``."""

    def __init__(self, base_url: str, keys: dict[str, tuple[uuid.UUID, str]], timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.keys = keys
        self.devices = set(keys)
        self.timeout = timeout
        self.accepted = 0
        self.failures = 0
        self._lock = threading.Lock()

    def prime(self, now: datetime, sample: Sample) -> None:
        """Nothing to prepare: requests carry their values."""

    def start(self) -> None:
        """Nothing to connect: each send is one request per device."""

    def send(self, now: datetime, sample: Sample) -> None:
        """POST one message per device present in ``sample``."""
        for name, (device_id, api_key) in self.keys.items():
            if name not in sample:
                continue
            body = json.dumps(design_message(now, device_id, sample[name], "simulator-http")).encode()
            request = urllib.request.Request(
                f"{self.base_url}/api/v1/telemetry",
                data=body,
                headers={"Content-Type": "application/json", "X-API-Key": api_key},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    self.accepted += int(json.loads(response.read()).get("accepted", 0))
            except (urllib.error.URLError, OSError, ValueError) as error:
                self.failures += 1
                log.debug("simulator HTTP post failed: %s", error)

    def stop(self) -> None:
        """Nothing to close."""


def modbus_map(keys: list[str]) -> list[dict[str, Any]]:
    """A register map for ``keys``: float32 holding registers, two per key, from address 0."""
    return [
        {"key": key, "address": 2 * index, "function": "holding", "type": "float32", "unit": UNITS.get(key)}
        for index, key in enumerate(keys)
    ]


class Modbus:
    """One Modbus TCP server per device, registers updated on every send."""

    def __init__(self, ports: dict[str, int], keys: dict[str, list[str]]) -> None:
        self.devices = set(ports)
        self.maps = {device: modbus_map(keys[device]) for device in ports}
        self.servers = {
            device: ModbusServer([Entry.parse(e) for e in self.maps[device]], port)
            for device, port in ports.items()
        }

    def prime(self, now: datetime, sample: Sample) -> None:
        """Fill the registers before the servers answer their first read."""
        self.send(now, sample)

    def start(self) -> None:
        """Start every server."""
        for server in self.servers.values():
            server.start()

    def send(self, now: datetime, sample: Sample) -> None:
        """Write the current values into the registers (missing devices keep their last values)."""
        for device, server in self.servers.items():
            for key, value in sample.get(device, {}).items():
                if key in server.entries:
                    server.set(key, value)

    def stop(self) -> None:
        """Stop every server."""
        for server in self.servers.values():
            server.stop()


class OpcUa:
    """One OPC-UA server exposing ``{device}.{key}`` variables with engineering units."""

    def __init__(self, port: int, keys: dict[str, list[str]]) -> None:
        self.devices = set(keys)
        variables = {f"{d}.{k}": (0.0, UNITS.get(k)) for d, device_keys in keys.items() for k in device_keys}
        self.server = OpcUaServer(port, variables)

    def node_map(self, device: str, keys: list[str]) -> dict[str, str]:
        """The ``config.nodes`` of the OPC-UA device row for ``device``."""
        return {self.server.node_id(f"{device}.{key}"): key for key in keys}

    def prime(self, now: datetime, sample: Sample) -> None:
        """Initial values of the variables (served from the first read)."""
        for device, values in sample.items():
            for key, value in values.items():
                name = f"{device}.{key}"
                if name in self.server.variables:
                    self.server.variables[name] = (value, self.server.variables[name][1])

    def start(self) -> None:
        """Start the server."""
        self.server.start()

    def send(self, now: datetime, sample: Sample) -> None:
        """Write the current values (missing devices keep their last values)."""
        for device in self.devices:
            for key, value in sample.get(device, {}).items():
                self.server.set(f"{device}.{key}", value)

    def stop(self) -> None:
        """Stop the server."""
        self.server.stop()
