"""OPC-UA connector: subscribes to a device's nodes, maps status codes to quality, reconnects with backoff."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, Node, ua

from ingest.connectors.base import DeviceConfig, DeviceConnector, ReadingSink, StatusSetter
from ingest.connectors.registry import register
from ingest.points import Reading

log = logging.getLogger(__name__)

SECURITY_MODES = ("None", "Sign", "SignAndEncrypt")
SECURITY_POLICIES = ("None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")


def quality_of(status: ua.StatusCode | None) -> int:
    """OPC-UA status severity as a 0-100 quality: Good 100, Uncertain 50, Bad 0."""
    if status is None:
        return 100
    severity = status.value >> 30
    return 100 if severity == 0 else 50 if severity == 1 else 0


def status_name(status: Any) -> str:
    """A status code by name (``BadNodeIdUnknown``), not ``StatusCode(value=2150891520)``."""
    code = getattr(status, "value", status)
    try:
        return str(ua.StatusCode(ua.UInt32(int(code))).name)
    except Exception:  # not a status code after all: say what it is
        return str(status)


def plain(value: Any) -> Any:
    """An OPC-UA value as a plain Python number (booleans and numbers pass; other types as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class OpcUaConnector(DeviceConnector):
    """Subscribes to data changes of the configured nodes on one OPC-UA server."""

    protocol = "opcua"

    def __init__(self, device: DeviceConfig, sink: ReadingSink, set_status: StatusSetter) -> None:
        super().__init__(device, sink, set_status)
        config = device.config
        self.endpoint = str(config.get("endpoint") or device.connection_string or "")
        if not self.endpoint:
            raise ValueError(f"OPC-UA device {device.name}: no endpoint in config or connection_string")
        self.nodes: dict[str, str] = dict(config.get("nodes", {}))
        self.sampling_ms = float(config.get("sampling_interval_ms", 1000))
        self.timeout = float(config.get("timeout_ms", 4000)) / 1000
        self.security: dict[str, Any] = dict(config.get("security") or {})
        self.username: str | None = config.get("username")
        self.password: str | None = config.get("password")
        self.backoff = self.backoff_from(config)
        self.units: dict[str, str] = {}
        # Configured nodes that could not be monitored, with why (status code name); the others keep flowing.
        self.failed_nodes: dict[str, str] = {}
        self._keys: dict[str, str] = {}
        self._lost = asyncio.Event()

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """JSON Schema of an OPC-UA device's ``config``."""
        return {
            "type": "object",
            "required": ["nodes"],
            "properties": {
                "endpoint": {"type": "string", "pattern": "^opc\\.tcp://"},
                "nodes": {"type": "object", "additionalProperties": {"type": "string"}},
                "sampling_interval_ms": {"type": "number", "minimum": 0},
                "timeout_ms": {"type": "number", "minimum": 100},
                "username": {"type": "string"},
                "password": {"type": "string"},
                "security": {
                    "type": "object",
                    "properties": {
                        "policy": {"enum": list(SECURITY_POLICIES)},
                        "mode": {"enum": list(SECURITY_MODES)},
                        "certificate": {"type": "string"},
                        "private_key": {"type": "string"},
                        "server_certificate": {"type": "string"},
                    },
                },
            },
        }

    def _client(self) -> Client:
        client = Client(self.endpoint, timeout=self.timeout, watchdog_intervall=max(self.timeout / 2, 0.5))
        client.session_timeout = 60_000
        if self.username:
            client.set_user(self.username)
        if self.password:
            client.set_password(self.password)

        async def lost(error: Exception) -> None:
            self._lost.set()

        client.connection_lost_callback = lost
        return client

    async def _secure(self, client: Client) -> None:
        policy = self.security.get("policy", "None")
        mode = self.security.get("mode", "None")
        if policy == "None" and mode == "None":
            return
        parts = [policy, mode, self.security["certificate"], self.security["private_key"]]
        if self.security.get("server_certificate"):
            parts.append(self.security["server_certificate"])
        await client.set_security_string(",".join(parts))

    async def run(self) -> None:
        """Connect, subscribe, wait for a lost connection, then reconnect with backoff; until cancelled."""
        while True:
            client = self._client()
            self._lost.clear()
            connected = False
            delay = 0.0
            try:
                await self._secure(client)
                await client.connect()
                connected = True
                await self._subscribe(client)
                self.backoff.reset()
                self.status(*self._node_status())
                self.stats.state = "connected"
                await self._lost.wait()
                raise ConnectionError("connection to the OPC-UA server lost")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.stats.failed(error)
                self.status("error", str(error)[:1000] or type(error).__name__)
                self.stats.reconnects += 1
                delay = self.backoff.next_delay()
                log.info("opcua %s: %s; retrying in %.1f s", self.device.name, error, delay)
            finally:
                if connected:
                    try:
                        await asyncio.wait_for(client.disconnect(), self.timeout)
                    except Exception:  # the server is gone; nothing to close politely
                        log.debug("opcua %s: disconnect failed", self.device.name, exc_info=True)
            await asyncio.sleep(delay)

    async def read_once(self) -> list[Reading]:
        """Connect, read every configured node's value once (bad ones raise, by status name), disconnect."""
        client = self._client()
        await self._secure(client)
        await client.connect()
        try:
            stamp = datetime.now(UTC)
            readings = []
            for node_id, key in self.nodes.items():
                data = await client.get_node(node_id).read_data_value(raise_on_bad_status=False)
                if data.StatusCode is not None and not data.StatusCode.is_good():
                    raise ValueError(f"{node_id}: {status_name(data.StatusCode)}")
                value = plain(data.Value.Value if data.Value is not None else None)
                readings.append(Reading(self.device.id, key, value, timestamp=stamp, quality=100))
            return readings
        finally:
            await asyncio.wait_for(client.disconnect(), self.timeout)

    async def _subscribe(self, client: Client) -> None:
        """Monitor every configured node that exists; a bad node is recorded, never stops the others."""
        self.failed_nodes = {}
        nodes: list[Node] = []
        keys: dict[str, str] = {}
        for node_id, key in self.nodes.items():
            try:
                node = client.get_node(node_id)
            except Exception as error:  # a NodeId the library cannot parse
                self.failed_nodes[node_id] = f"invalid NodeId: {error}"
                continue
            nodes.append(node)
            keys[node.nodeid.to_string()] = key
        for node in nodes:
            unit = await _unit(node)
            if unit:
                self.units[node.nodeid.to_string()] = unit
        self._keys = keys
        if nodes:
            subscription = await client.create_subscription(self.sampling_ms, self)
            results = await subscription.subscribe_data_change(
                nodes, sampling_interval=ua.Double(self.sampling_ms)
            )
            for node, result in zip(nodes, results if isinstance(results, list) else [results], strict=True):
                if not isinstance(result, int):
                    self.failed_nodes[node.nodeid.to_string()] = status_name(result)
        if len(self.failed_nodes) == len(self.nodes):
            raise ConnectionError(f"no node can be monitored: {self._failures()}")

    def _failures(self) -> str:
        return "; ".join(f"{node_id}: {why}" for node_id, why in sorted(self.failed_nodes.items()))

    def _node_status(self) -> tuple[str, str | None]:
        """``online``, or ``degraded`` naming the nodes that fail while the others flow."""
        if not self.failed_nodes:
            return "online", None
        return "degraded", f"nodes failing: {self._failures()}"[:1000]

    def health(self) -> dict[str, Any]:
        """Counters plus the nodes that fail (NodeId → status code name) for ``/healthz``."""
        return {**super().health(), "failed_nodes": dict(self.failed_nodes)}

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        """asyncua callback: one monitored item changed."""
        node_id = node.nodeid.to_string()
        key = self._keys.get(node_id)
        if key is None:
            return
        value: ua.DataValue = data.monitored_item.Value
        stamp = value.SourceTimestamp or value.ServerTimestamp or datetime.now(UTC)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        quality = quality_of(value.StatusCode)
        metadata = None
        if quality < 100 and value.StatusCode is not None:
            # Why a sample is not Good travels with it (and tells the quarantine why a Bad one has no value).
            metadata = {"opcua_status": value.StatusCode.name}
        self.deliver(
            [
                Reading(
                    self.device.id,
                    key,
                    plain(val),
                    timestamp=stamp,
                    unit=self.units.get(node_id),
                    quality=quality,
                    metadata=metadata,
                )
            ]
        )

    def status_change_notification(self, status: Any) -> None:
        """asyncua callback: the subscription's status changed (the server closed it)."""
        self._lost.set()


async def _unit(node: Node) -> str | None:
    """The node's engineering unit from its ``EngineeringUnits`` property (EUInformation), if any."""
    try:
        prop = await node.get_child("0:EngineeringUnits")
        info = await prop.read_value()
    except ua.UaError:
        return None
    except Exception:
        return None
    text = getattr(getattr(info, "DisplayName", None), "Text", None)
    return str(text) if text else None


register(OpcUaConnector)
