"""The live simulator: provisions its devices, runs the model in scaled real time, reports on transports."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from ingest.connectors.sparkplug_devices import device_path
from ingest.simulator.model import PlantModel
from ingest.simulator.plant import PlantSpec
from ingest.simulator.transports import Http, Modbus, MqttJson, OpcUa, Sparkplug, Transport, modbus_map
from workbench.auth.api_keys import create_key
from workbench.db.tables import devices

log = logging.getLogger(__name__)

SPARKPLUG_NODE = "edge-1"


def free_port() -> int:
    """A TCP port nobody listens on right now (for the Modbus and OPC-UA servers)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Endpoints:
    """Where the simulator reports: broker, web app, and the ports it serves Modbus and OPC-UA on."""

    mqtt_url: str | None = None
    http_url: str | None = None
    modbus_ports: dict[str, int] = field(default_factory=dict)
    opcua_port: int | None = None


def _upsert(engine: Engine, name: str, kind: str, protocol: str, **values: Any) -> uuid.UUID:
    """Find the simulator's device row by name (reused across runs) or create it; bump ``updated_at``."""
    with engine.begin() as conn:
        found = conn.execute(select(devices.c.id).where(devices.c.name == name).limit(1)).scalar()
        fields = {"type": kind, "protocol": protocol, "area": "simulator", "updated_at": func.now(), **values}
        if found is not None:
            conn.execute(update(devices).where(devices.c.id == found).values(**fields))
            return uuid.UUID(str(found))
        device_id: uuid.UUID = conn.execute(
            insert(devices).values(name=name, metadata={"simulator": True}, **fields).returning(devices.c.id)
        ).scalar_one()
        return device_id


class Simulator:
    """Runs a plant model live; ``start`` provisions devices and transports, ``stop`` ends everything."""

    def __init__(
        self,
        plant: PlantSpec,
        engine: Engine,
        endpoints: Endpoints,
        speed: float = 1.0,
        interval: float = 1.0,
    ) -> None:
        self.plant = plant
        self.engine = engine
        self.endpoints = endpoints
        self.speed = speed
        self.interval = interval
        self.model = PlantModel(plant, start=datetime.now(UTC))
        self.ids: dict[str, uuid.UUID] = {}
        self.transports: list[Transport] = []
        self.ticks = 0
        self._ready: set[int] = set()
        self._starters: list[threading.Thread] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def keys(self) -> dict[str, list[str]]:
        """Every device's telemetry keys."""
        return {device: list(values) for device, values in self.model.truth().items()}

    def provision(self) -> list[Transport]:
        """Create or update the device rows (and HTTP keys) and build one transport per protocol used."""
        keys = self.keys()
        by_transport: dict[str, list[tuple[str, str]]] = {}
        for name, kind, transport in self.plant.devices():
            by_transport.setdefault(transport, []).append((name, kind))
        prefix = self.plant.name
        transports: list[Transport] = []
        # MQTT devices and the Sparkplug node log in with an API key each (the broker's logins follow keys).
        if by_transport.get("mqtt") and self.endpoints.mqtt_url:
            ids = {n: _upsert(self.engine, f"{prefix}/{n}", k, "mqtt") for n, k in by_transport["mqtt"]}
            self.ids.update(ids)
            logins = {n: create_key(self.engine, ids[n], "simulator")[1] for n in ids}
            transports.append(MqttJson(self.endpoints.mqtt_url, ids, logins))
        if by_transport.get("sparkplug") and self.endpoints.mqtt_url:
            for n, k in by_transport["sparkplug"]:
                path = device_path(prefix, SPARKPLUG_NODE, n)
                self.ids[n] = _upsert(self.engine, f"{prefix}/{n}", k, "sparkplug", connection_string=path)
            node_path = device_path(prefix, SPARKPLUG_NODE)
            node_name = f"{prefix}/{SPARKPLUG_NODE}"  # the name ingest gives a node it registers on NBIRTH
            node_id = _upsert(self.engine, node_name, "gateway", "sparkplug", connection_string=node_path)
            node_key = create_key(self.engine, node_id, "simulator")[1]
            names = [n for n, _ in by_transport["sparkplug"]]
            transports.append(
                Sparkplug(
                    self.endpoints.mqtt_url, prefix, SPARKPLUG_NODE, {n: keys[n] for n in names}, node_key
                )
            )
        if by_transport.get("http") and self.endpoints.http_url:
            http_keys: dict[str, tuple[uuid.UUID, str]] = {}
            for n, k in by_transport["http"]:
                device_id = _upsert(self.engine, f"{prefix}/{n}", k, "http")
                self.ids[n] = device_id
                http_keys[n] = (device_id, create_key(self.engine, device_id, "simulator")[1])
            transports.append(Http(self.endpoints.http_url, http_keys))
        if by_transport.get("modbus"):
            ports: dict[str, int] = {}
            for n, k in by_transport["modbus"]:
                port = self.endpoints.modbus_ports.get(n) or free_port()
                ports[n] = port
                config = {"registers": modbus_map(keys[n]), "interval_ms": int(self.interval * 1000)}
                self.ids[n] = _upsert(
                    self.engine,
                    f"{prefix}/{n}",
                    k,
                    "modbus",
                    connection_string=f"tcp://127.0.0.1:{port}",
                    config=config,
                )
            transports.append(Modbus(ports, {n: keys[n] for n in ports}))
        if by_transport.get("opcua"):
            names = [n for n, _ in by_transport["opcua"]]
            opcua = OpcUa(self.endpoints.opcua_port or free_port(), {n: keys[n] for n in names})
            for n, k in by_transport["opcua"]:
                config = {
                    "endpoint": opcua.server.endpoint,
                    "nodes": opcua.node_map(n, keys[n]),
                    "sampling_interval_ms": int(self.interval * 500),
                }
                self.ids[n] = _upsert(
                    self.engine, f"{prefix}/{n}", k, "opcua", connection_string=None, config=config
                )
            transports.append(opcua)
        return transports

    def send_once(self) -> None:
        """Step the model by one interval (scaled by speed) and report on every transport."""
        remaining = self.interval * self.speed
        while remaining > 0:
            dt = min(remaining, 5.0)
            self.model.step(dt)
            remaining -= dt
        sample = self.model.sample()
        now = datetime.now(UTC)
        for transport in self.transports:
            if id(transport) not in self._ready:
                continue  # still starting (an OPC-UA server takes seconds); the others report meanwhile
            try:
                transport.send(now, {d: v for d, v in sample.items() if d in transport.devices})
            except Exception:  # a broker or server hiccup must not stop the plant
                log.exception("simulator transport %s failed", type(transport).__name__)
        self.ticks += 1

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.send_once()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self, wait: bool = True) -> None:
        """Provision, start the transports (``wait``: until all run), and report from a background thread."""
        self.transports = self.provision()
        first = self.model.sample()
        now = datetime.now(UTC)
        for transport in self.transports:
            # Servers and births carry real values from the first read, never placeholder zeros.
            transport.prime(now, {d: v for d, v in first.items() if d in transport.devices})
        starters = [
            threading.Thread(target=self._start_transport, args=(t,), daemon=True) for t in self.transports
        ]
        for starter in starters:
            starter.start()
        if wait:
            for starter in starters:
                starter.join(60)
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()

    def _start_transport(self, transport: Transport) -> None:
        try:
            transport.start()
        except Exception:
            log.exception("simulator transport %s failed to start", type(transport).__name__)
            return
        self._ready.add(id(transport))

    def stop(self) -> None:
        """Stop the loop and every transport."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for starter in self._starters:
            starter.join(30)  # a server still starting is stopped once it runs, not leaked
        for transport in self.transports:
            if id(transport) not in self._ready:
                continue
            try:
                transport.stop()
            except Exception:
                log.warning("simulator transport %s did not stop cleanly", type(transport).__name__)
