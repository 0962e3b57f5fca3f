"""Plant configuration: pumps filling tanks through valves, as data (JSON-ready) with a default demo plant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ingest.simulator.faults import Fault

TRANSPORTS = ("mqtt", "sparkplug", "http", "modbus", "opcua")


@dataclass
class PumpSpec:
    """A centrifugal pump with its motor, feeding ``tank`` through ``valve``."""

    name: str
    tank: str
    valve: str
    transport: str = "mqtt"
    rated_flow: float = 120.0  # m3/h at full speed, valve open
    rated_head: float = 50.0  # m
    static_head: float = 15.0  # m the system needs before any flow
    efficiency: float = 0.78
    motor_efficiency: float = 0.93
    voltage: float = 400.0  # V, three-phase
    power_factor: float = 0.86


@dataclass
class TankSpec:
    """A tank drained by a demand that follows the time of day."""

    name: str
    transport: str = "mqtt"
    area: float = 20.0  # m2
    height: float = 5.0  # m
    setpoint: float = 3.0  # m
    demand: float = 90.0  # m3/h mean outflow


@dataclass
class ValveSpec:
    """A discharge valve; ``opening`` is its normal position (0..1)."""

    name: str
    transport: str = "mqtt"
    opening: float = 1.0


@dataclass
class PlantSpec:
    """The whole plant, the faults to inject, and the random seed."""

    name: str = "demo-plant"
    seed: int = 42
    pumps: list[PumpSpec] = field(default_factory=list)
    tanks: list[TankSpec] = field(default_factory=list)
    valves: list[ValveSpec] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def devices(self) -> list[tuple[str, str, str]]:
        """Every simulated device as (name, type, transport)."""
        return (
            [(p.name, "pump", p.transport) for p in self.pumps]
            + [(t.name, "tank", t.transport) for t in self.tanks]
            + [(v.name, "valve", v.transport) for v in self.valves]
        )

    def to_dict(self) -> dict[str, Any]:
        """The plant as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PlantSpec:
        """A plant from JSON data (as written by ``to_dict`` or by hand)."""
        return cls(
            name=str(raw.get("name", "plant")),
            seed=int(raw.get("seed", 42)),
            pumps=[PumpSpec(**p) for p in raw.get("pumps", [])],
            tanks=[TankSpec(**t) for t in raw.get("tanks", [])],
            valves=[ValveSpec(**v) for v in raw.get("valves", [])],
            faults=[Fault.from_dict(f) for f in raw.get("faults", [])],
        )

    def validate(self) -> None:
        """Reject dangling references and unknown transports."""
        names = {t.name for t in self.tanks} | {v.name for v in self.valves} | {p.name for p in self.pumps}
        for pump in self.pumps:
            if pump.tank not in {t.name for t in self.tanks} or pump.valve not in {
                v.name for v in self.valves
            }:
                raise ValueError(f"pump {pump.name}: tank {pump.tank!r} or valve {pump.valve!r} not defined")
        for name, _, transport in self.devices():
            if transport not in TRANSPORTS:
                raise ValueError(f"{name}: transport must be one of {', '.join(TRANSPORTS)}")
        for fault in self.faults:
            if fault.device not in names:
                raise ValueError(f"fault {fault.kind}: no device {fault.device!r}")


def demo_plant(seed: int = 42) -> PlantSpec:
    """Five pumps, one per transport, each filling its own tank through its own valve."""
    plant = PlantSpec(name="demo-plant", seed=seed)
    for index, transport in enumerate(TRANSPORTS, start=1):
        plant.pumps.append(
            PumpSpec(
                name=f"pump-{index}",
                tank=f"tank-{index}",
                valve=f"valve-{index}",
                transport=transport,
                rated_flow=100.0 + 10 * index,
            )
        )
        plant.tanks.append(
            TankSpec(name=f"tank-{index}", transport="mqtt" if transport != "http" else "http")
        )
        plant.valves.append(
            ValveSpec(name=f"valve-{index}", transport="mqtt" if transport != "http" else "http")
        )
    return plant
