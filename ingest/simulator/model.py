"""The plant model: pump and system curves, motor heating, tank mass balance, daily demand, noise, faults.

Runs on simulated time (``step(dt)``), so tests and backfills run it far faster than real time. The same
seed gives the same series.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ingest.simulator.faults import Fault
from ingest.simulator.plant import PlantSpec, PumpSpec, TankSpec

RHO_G = 1000 * 9.81  # water: N/m3
SQRT3 = math.sqrt(3)
UNITS = {
    "motor_current": "A",
    "voltage": "V",
    "power": "kW",
    "vibration": "mm/s",
    "motor_temperature": "C",
    "fluid_temperature": "C",
    "pressure": "bar",
    "flow": "m3/h",
    "speed": "%",
    "level": "m",
    "level_percent": "%",
    "outflow": "m3/h",
    "position": "%",
}
# Relative (or absolute, for temperatures) standard deviation of each sensor's noise.
NOISE = {
    "motor_current": 0.01,
    "voltage": 0.003,
    "power": 0.01,
    "vibration": 0.04,
    "pressure": 0.008,
    "flow": 0.01,
    "level": 0.002,
    "outflow": 0.02,
}
NOISE_ABS = {"motor_temperature": 0.15, "fluid_temperature": 0.08, "speed": 0.1, "position": 0.05}

Sample = dict[str, dict[str, float]]  # device -> key -> value


def demand_factor(hour: float) -> float:
    """Water demand relative to the daily mean: low at night, peaks near 07:00 and 19:00."""
    morning = math.exp(-(((hour - 7.0) / 1.6) ** 2))
    evening = math.exp(-(((hour - 19.0) / 2.0) ** 2))
    night = math.exp(-(((hour - 3.0) / 2.5) ** 2))
    return 0.95 + 0.55 * morning + 0.45 * evening - 0.45 * night


def ambient(hour: float) -> float:
    """Outdoor temperature (C): coolest before dawn, warmest mid-afternoon."""
    return 15.0 + 6.0 * math.sin(2 * math.pi * (hour - 9.0) / 24)


@dataclass
class PumpState:
    """What a pump is doing now (true values, before sensors)."""

    spec: PumpSpec
    speed: float = 0.7
    motor_temperature: float = 0.0
    fluid_temperature: float = 0.0
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class TankState:
    """A tank's level (m) and outflow now."""

    spec: TankSpec
    level: float
    outflow: float = 0.0


class PlantModel:
    """Simulates a :class:`PlantSpec`; ``step`` advances time, ``sample`` reads every sensor."""

    def __init__(self, plant: PlantSpec, start: datetime | None = None) -> None:
        plant.validate()
        self.plant = plant
        self.start = start or datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
        self.t = 0.0
        self.rng = random.Random(plant.seed)
        self.pumps = {p.name: PumpState(p) for p in plant.pumps}
        self.tanks = {t.name: TankState(t, level=t.setpoint) for t in plant.tanks}
        self.valves = {v.name: v.opening for v in plant.valves}
        self.faults: list[Fault] = list(plant.faults)
        self._stuck: dict[tuple[str, str], float] = {}
        hour = self.hour
        for tank in self.tanks.values():
            tank.outflow = tank.spec.demand * demand_factor(hour)
        for pump in self.pumps.values():
            # Start in steady state: no start-up transient that rules would take for a fault.
            pump.speed = self._speed_target(pump)
            pump.motor_temperature = ambient(hour) + 30.0
            pump.fluid_temperature = ambient(hour) + 3.0
        self._solve()
        for pump in self.pumps.values():
            current = pump.values["motor_current"] / self._rated_current(pump.spec)
            pump.motor_temperature = ambient(hour) + 45 * current**2

    @property
    def now(self) -> datetime:
        """The simulated wall-clock time."""
        return self.start + timedelta(seconds=self.t)

    @property
    def hour(self) -> float:
        """Simulated hour of day (0..24)."""
        now = self.now
        return now.hour + now.minute / 60 + now.second / 3600

    def inject(self, fault: Fault) -> None:
        """Add a fault (its ``start_s`` is simulated seconds since the model started)."""
        self.faults.append(fault)

    def _fault(self, device: str, kind: str) -> float:
        """Progress (0..1) x severity of the strongest active ``kind`` fault on ``device``."""
        return max(
            (f.progress(self.t) * f.severity for f in self.faults if f.device == device and f.kind == kind),
            default=0.0,
        )

    def step(self, dt: float) -> None:
        """Advance the plant by ``dt`` simulated seconds."""
        self.t += dt
        hour = self.hour
        for tank in self.tanks.values():
            tank.outflow = max(0.0, tank.spec.demand * demand_factor(hour) * (1 + self.rng.gauss(0, 0.02)))
        for pump in self.pumps.values():
            target = self._speed_target(pump)
            pump.speed += max(-0.02 * dt, min(0.02 * dt, target - pump.speed))  # ramp-limited drive
        for valve in self.plant.valves:
            self.valves[valve.name] = valve.opening * (
                1 - min(0.98, self._fault(valve.name, "valve_closing"))
            )
        self._solve()
        for pump in self.pumps.values():
            values = pump.values
            tank = self.tanks[pump.spec.tank]
            tank.level += (values["flow"] - tank.outflow) / 3600 * dt / tank.spec.area
            tank.level = min(tank.spec.height, max(0.0, tank.level))
            # First-order heating: the motor follows I^2 losses (tau 15 min), the fluid the ambient (1 h).
            rated_current = self._rated_current(pump.spec)
            wear = self._fault(pump.spec.name, "bearing_wear")
            motor_target = ambient(hour) + 45 * (values["motor_current"] / rated_current) ** 2 + 20 * wear
            pump.motor_temperature += (motor_target - pump.motor_temperature) * min(1.0, dt / 900)
            loss = max(0.0, values["power"] - values["hydraulic_power"]) / max(values["power"], 1e-6)
            fluid_target = ambient(hour) + 3 + 4 * loss
            pump.fluid_temperature += (fluid_target - pump.fluid_temperature) * min(1.0, dt / 3600)
            values["motor_temperature"] = pump.motor_temperature
            values["fluid_temperature"] = pump.fluid_temperature

    def _speed_target(self, pump: PumpState) -> float:
        """Level control: feed-forward on demand plus a proportional term on the level error."""
        tank = self.tanks[pump.spec.tank]
        ratio = tank.outflow / pump.spec.rated_flow
        target = 0.35 + 0.6 * ratio + 0.25 * (tank.spec.setpoint - tank.level)
        return min(1.0, max(0.3, target))

    def _rated_current(self, spec: PumpSpec) -> float:
        hydraulic = RHO_G * spec.rated_flow / 3600 * spec.rated_head / 1000
        electric = hydraulic / spec.efficiency / spec.motor_efficiency
        return electric * 1000 / (SQRT3 * spec.voltage * spec.power_factor)

    def _solve(self) -> None:
        """Operating point of every pump: where the pump curve meets the system curve through the valve."""
        hour = self.hour
        for pump in self.pumps.values():
            spec, s = pump.spec, pump.speed
            shutoff = spec.rated_head * 1.25
            k_pump = (shutoff - spec.rated_head) / spec.rated_flow**2
            k_system = (spec.rated_head - spec.static_head) / spec.rated_flow**2
            opening = self.valves[spec.valve]
            available = shutoff * s * s - spec.static_head
            if opening <= 0.02 or available <= 0:
                flow = 0.0
            else:
                flow = math.sqrt(available / (k_pump + k_system / opening**2))
            cavitation = self._fault(spec.name, "cavitation")
            if cavitation:
                # Vapour pockets: less flow, less head, and both fluctuate.
                flow *= max(0.0, 1 - 0.35 * cavitation * (1 + 0.3 * self.rng.gauss(0, 1)))
            head = max(0.0, shutoff * s * s - k_pump * flow**2) * (1 - 0.2 * cavitation)
            hydraulic = RHO_G * flow / 3600 * head / 1000  # kW
            best = spec.rated_flow * s
            efficiency = max(0.2, spec.efficiency * (1 - 0.6 * ((flow / best) - 1) ** 2)) if best else 0.2
            rated_power = RHO_G * spec.rated_flow / 3600 * spec.rated_head / 1000 / spec.efficiency
            wear = self._fault(spec.name, "bearing_wear")
            shaft = hydraulic / efficiency + 0.08 * rated_power * s**3 + 0.05 * rated_power * wear
            electric = shaft / spec.motor_efficiency
            voltage = spec.voltage * (1 + 0.01 * math.sin(2 * math.pi * hour / 24))
            vibration = 1.2 + 1.3 * s * s + 8.0 * wear + 5.0 * cavitation * abs(self.rng.gauss(0.6, 0.5))
            pump.values = {
                "flow": flow,
                "pressure": 0.5 + head * RHO_G / 1e5,
                "hydraulic_power": hydraulic,
                "power": electric,
                "motor_current": electric * 1000 / (SQRT3 * voltage * spec.power_factor),
                "voltage": voltage,
                "vibration": vibration,
                "speed": 100 * s,
                "motor_temperature": pump.motor_temperature,
                "fluid_temperature": pump.fluid_temperature,
            }

    def truth(self) -> Sample:
        """True process values of every device (no sensor noise or sensor faults)."""
        result: Sample = {}
        for pump in self.pumps.values():
            result[pump.spec.name] = {k: v for k, v in pump.values.items() if k != "hydraulic_power"}
        for tank in self.tanks.values():
            result[tank.spec.name] = {
                "level": tank.level,
                "level_percent": 100 * tank.level / tank.spec.height,
                "outflow": tank.outflow,
            }
        for name, opening in self.valves.items():
            result[name] = {"position": 100 * opening}
        return result

    def sample(self) -> Sample:
        """What the sensors report now: truth plus noise, drift, stuck values and dropouts."""
        measured: Sample = {}
        for device, values in self.truth().items():
            readings: dict[str, float] = {}
            for key, value in values.items():
                noisy = value * (1 + self.rng.gauss(0, NOISE.get(key, 0.0))) + self.rng.gauss(
                    0, NOISE_ABS.get(key, 0.0)
                )
                if key not in ("motor_temperature", "fluid_temperature", "voltage"):
                    noisy = max(0.0, noisy)
                readings[key] = self._sensor_faults(device, key, value, noisy)
            dropout = self._fault(device, "dropout")
            if dropout and self.rng.random() < dropout:
                continue
            measured[device] = {k: v for k, v in readings.items() if not math.isnan(v)}
        return measured

    def _sensor_faults(self, device: str, key: str, true: float, noisy: float) -> float:
        for fault in self.faults:
            if fault.device != device or fault.key != key or not fault.active(self.t):
                continue
            if fault.kind == "sensor_drift":
                hours = (self.t - fault.start_s) / 3600
                noisy += abs(true) * 0.10 * fault.severity * hours + 0.02 * fault.severity * (
                    self.t - fault.start_s
                )
            elif fault.kind == "stuck_sensor":
                noisy = self._stuck.setdefault((device, key), noisy)
        return noisy

    def run(self, seconds: float, dt: float = 1.0, every: float = 1.0) -> list[tuple[datetime, Sample]]:
        """Step ``seconds`` of simulated time; sample every ``every`` seconds."""
        samples: list[tuple[datetime, Sample]] = []
        steps = round(seconds / dt)
        per_sample = max(1, round(every / dt))
        for i in range(1, steps + 1):
            self.step(dt)
            if i % per_sample == 0:
                samples.append((self.now, self.sample()))
        return samples
