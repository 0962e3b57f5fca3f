"""What ``workbench simulate`` does (the click command in cli/processes.py only parses options)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from ingest.device_auth import connect_logins
from ingest.simulator.faults import Fault
from ingest.simulator.live import Endpoints, Simulator
from ingest.simulator.plant import PlantSpec, demo_plant
from workbench.db.engine import make_engine
from workbench.settings import Settings


def load_plant(path: Path | None, seed: int | None, faults: list[str]) -> PlantSpec:
    """The plant from a JSON file (or the demo plant), with the seed and extra fault specs applied."""
    plant = PlantSpec.from_dict(json.loads(path.read_text())) if path else demo_plant()
    if seed is not None:
        plant.seed = seed
    plant.faults.extend(Fault.parse(spec) for spec in faults)
    plant.validate()
    return plant


def simulate(
    settings: Settings,
    plant: PlantSpec,
    speed: float,
    interval: float,
    duration: float | None,
    http_url: str | None,
    stop: threading.Event,
) -> Simulator:
    """Provision the plant's devices and run it until ``duration`` passes or ``stop`` is set (the command's
    :func:`workbench.runtime.stop_on_signals`)."""
    assert settings.database_url, "simulate needs the platform's database"
    mqtt_url = settings.mqtt_url or f"mqtt://127.0.0.1:{settings.mqtt_port}"
    engine = make_engine(settings.database_url, pool_size=2)
    # The keys the simulator issues its devices become logins of `workbench up`'s broker.
    disconnect = connect_logins(settings, engine)
    endpoints = Endpoints(mqtt_url=mqtt_url, http_url=http_url or f"http://{settings.host}:{settings.port}")
    simulator = Simulator(plant, engine, endpoints, speed=speed, interval=interval)
    simulator.start()
    try:
        stop.wait(duration)
    finally:
        simulator.stop()
        if disconnect is not None:
            disconnect()
        engine.dispose()
    return simulator
