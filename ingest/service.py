"""The ingest service: pipeline, MQTT subscriber and status watcher, started and stopped together."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine

from ingest.connectors.manager import ConnectorManager, start_connectors
from ingest.mqtt_client import speaks_mqtt5
from ingest.mqtt_ingest import MqttIngest, mqtt5_only
from ingest.pipeline import Pipeline
from ingest.push.listener import PushListener
from ingest.push.registry import listened
from ingest.retire import SessionRetirer, retired_client_ids, worker_group
from ingest.status import StatusWatcher
from workbench import plugins
from workbench.db.engine import make_engine
from workbench.db.rollups import RollupMaintainer
from workbench.live.bridge import RedisBridge
from workbench.live.bus import EventBus
from workbench.mqtt import host_port
from workbench.platform import Platform
from workbench.runtime import configure_logging, run_until_signal, stop_on_signals
from workbench.settings import Settings

log = logging.getLogger(__name__)


class IngestService:
    """Everything ``workbench ingest`` runs; ``workbench up`` runs it in-process on the web app's bus."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        bus: EventBus,
        worker: int | None = None,
        retire: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.bus = bus
        self.pipeline = Pipeline(settings, engine, bus)
        # Every worker folds its own batches into the rollups (they add up); one repairs them at start.
        self.rollups = RollupMaintainer(engine, bus, repair=worker in (None, 0))
        self.watcher = StatusWatcher(engine, bus, settings.ingest_offline_after)
        self.mqtt: MqttIngest | None = None
        if settings.ingest_mqtt and settings.mqtt_url:
            client_id = (
                settings.ingest_client_id if worker is None else f"{settings.ingest_client_id}-{worker}"
            )
            self.mqtt = MqttIngest(
                settings.mqtt_url,
                self.pipeline,
                client_id,
                shared_group=settings.ingest_shared_group,
                inflight=settings.ingest_inflight,
            )
        # Plugin codecs' topics (pushed protocols without a receiver of their own): the first process only.
        self.push: PushListener | None = None
        plugins.load((settings.plugins or "").split(","))
        codecs = listened()
        if codecs and settings.ingest_mqtt and settings.mqtt_url and worker in (None, 0):
            self.push = PushListener(settings.mqtt_url, self.pipeline, codecs, settings.ingest_client_id)
        # Sessions of workers that no longer run: drained through this pipeline, then ended (retire.py).
        self.retirer = SessionRetirer(settings, self.pipeline, retire) if self.mqtt and retire else None

    def start(self) -> None:
        """Start the writer, the status watcher, then the MQTT session (so acks have somewhere to go)."""
        self.rollups.start()
        self.pipeline.start()
        self.watcher.start()
        if self.mqtt is not None:
            try:
                self.mqtt.start()
            except Exception:
                self.stop()  # no writer or watcher thread left behind a refused start (one-line errors exit)
                raise
        if self.push is not None:
            self.push.start()
        if self.retirer is not None:
            if self.mqtt is not None and self.mqtt.v5:
                self.retirer.start()
            else:  # MQTT 3.1.1 runs one process with one session: no worker sessions to retire
                log.info("MQTT 3.1.1 broker: session retirement skipped")
                self.retirer = None
        log.info("ingest running (pid %s, mqtt %s)", os.getpid(), "on" if self.mqtt else "off")

    def stop(self) -> None:
        """Stop taking messages, commit (and acknowledge) what was taken, then disconnect."""
        if self.mqtt is not None:
            self.mqtt.pause()
        if self.push is not None:
            self.push.stop()
        if self.retirer is not None:
            self.retirer.pause()
        self.watcher.stop()
        self.pipeline.stop()
        self.rollups.stop()
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.retirer is not None:
            self.retirer.stop()

    def health(self) -> dict[str, Any]:
        """Health details of the pipeline and the MQTT session; raises when either is down."""
        details = {"pipeline": self.pipeline.health()}
        if self.mqtt is not None:
            details["mqtt"] = self.mqtt.health()
        if self.push is not None:
            details["push"] = self.push.health()
        return details


def start_in_process(platform: Platform) -> Callable[[], None]:
    """Run ingest inside the web process (``workbench up``) on its bus; returns the stop function.

    Start it before serving: a pipeline already on the platform (HTTP ingest makes one on first use when no
    ingest runs in the process) would otherwise be a second writer, so that is refused.
    """
    if platform.services.pipeline is not None:
        raise RuntimeError(
            "this platform already has an ingest pipeline: start ingest before serving requests"
        )
    service = IngestService(platform.settings, platform.engine, platform.bus)
    service.start()
    platform.services.ingest = service
    platform.services.pipeline = service.pipeline
    platform.health.register("ingest", service.health)
    stops: list[Callable[[], None]] = [service.stop]
    stops.insert(0, start_connectors(platform))
    if platform.settings.redis_url:
        # Events of separate `workbench ingest` processes reach this web process (and ours reach others).
        bridge = RedisBridge(platform.settings.redis_url, platform.bus)
        bridge.start()
        stops.insert(0, bridge.stop)

    def stop() -> None:
        for step in stops:
            step()

    return stop


def run_standalone(settings: Settings, workers: int = 1, stop: threading.Event | None = None) -> None:
    """``workbench ingest``: run the service until SIGTERM or Ctrl-C (or ``stop``, which the caller may have
    armed with :func:`stop_on_signals` already); several workers share a subscription."""
    stop = stop or stop_on_signals()
    if workers > 1:
        # Checked before the processes start: each would fail alone, and a log line per worker helps nobody.
        if settings.ingest_mqtt and settings.mqtt_url and speaks_mqtt5(settings.mqtt_url) is False:
            raise mqtt5_only(*host_port(settings.mqtt_url), f"--workers {workers} (a shared subscription)")
        _run_workers(settings, workers, stop)
        return
    _run_one(settings, None, 1, stop)


def _run_one(settings: Settings, worker: int | None, workers: int, stop: threading.Event) -> None:
    assert settings.database_url
    engine = make_engine(settings.database_url, pool_size=2, timeout=settings.database_timeout)
    bus = EventBus()
    bridge = None
    if settings.redis_url:
        bridge = RedisBridge(settings.redis_url, bus, forward=True, receive=False)
        bridge.start()
    # One process (the first) retires the sessions of workers a previous run had and this one has not.
    retire = retired_client_ids(settings.ingest_client_id, workers) if worker in (None, 0) else None
    service = IngestService(settings, engine, bus, worker, retire=retire)
    service.start()
    # One process polls OPC-UA/Modbus devices and hosts Sparkplug: several would fight over STATE.
    connectors = ConnectorManager(engine, service.pipeline, settings) if worker in (None, 0) else None
    if connectors is not None:
        connectors.start()
    try:
        run_until_signal(stop)
    finally:
        if connectors is not None:
            connectors.stop()
        service.stop()
        if bridge is not None:
            bridge.stop()
        engine.dispose()


def _run_workers(settings: Settings, workers: int, stop: threading.Event) -> None:
    # A shared subscription splits messages between the workers; each keeps its own persistent session.
    shared = replace(settings, ingest_shared_group=worker_group(settings))
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker_main, args=(shared, index, workers), daemon=False)
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    while not stop.wait(0.5) and any(process.is_alive() for process in processes):
        pass
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(15)


def _worker_main(settings: Settings, worker: int, workers: int) -> None:
    configure_logging(settings)
    _run_one(settings, worker, workers, stop_on_signals())
