"""The plant model: physics-ish invariants, daily cycles, determinism, and each fault's signature."""

from __future__ import annotations

import math
import statistics

import pytest

from ingest.simulator.faults import Fault
from ingest.simulator.model import RHO_G, SQRT3, PlantModel, demand_factor
from ingest.simulator.plant import PlantSpec, PumpSpec, TankSpec, ValveSpec, demo_plant


def one_pump(seed: int = 7, faults: list[Fault] | None = None) -> PlantModel:
    plant = PlantSpec(
        name="t",
        seed=seed,
        pumps=[PumpSpec(name="p", tank="k", valve="v")],
        tanks=[TankSpec(name="k")],
        valves=[ValveSpec(name="v")],
        faults=faults or [],
    )
    return PlantModel(plant)


def series(model: PlantModel, seconds: float, dt: float = 5.0) -> list[dict[str, dict[str, float]]]:
    return [sample for _, sample in model.run(seconds, dt=dt, every=dt)]


def test_same_seed_same_series_and_another_seed_differs() -> None:
    first = series(one_pump(1), 600)
    assert first == series(one_pump(1), 600)
    assert first != series(one_pump(2), 600)


def test_invariants_hold_over_a_simulated_day() -> None:
    model = one_pump()
    spec = model.plant.pumps[0]
    level_start = model.tanks["k"].level
    balance = 0.0
    dt = 10.0
    for _ in range(int(86400 / dt)):
        model.step(dt)
        truth = model.truth()
        pump, tank = truth["p"], truth["k"]
        balance += (pump["flow"] - tank["outflow"]) * dt / 3600 / 20.0
        assert pump["flow"] >= 0 and pump["pressure"] > 0.4 and pump["motor_current"] > 0
        assert 0.0 <= tank["level"] <= 5.0
        # Electrical power and current agree (three-phase), and the motor draws more than the water gets.
        assert pump["power"] == pytest.approx(
            SQRT3 * pump["voltage"] * pump["motor_current"] * spec.power_factor / 1000
        )
        head = (pump["pressure"] - 0.5) * 1e5 / RHO_G
        assert pump["power"] > RHO_G * pump["flow"] / 3600 * head / 1000
        assert -20 < pump["fluid_temperature"] < pump["motor_temperature"] + 30
    # Mass balance: the level moved exactly as much as inflow minus outflow (the tank never clipped).
    assert model.tanks["k"].level - level_start == pytest.approx(balance, abs=1e-6)


def test_daily_cycle_shapes_demand_and_flow() -> None:
    assert demand_factor(7.0) > 1.4 * demand_factor(3.0)
    model = one_pump()
    by_hour: dict[int, list[float]] = {}
    for when, sample in model.run(86400, dt=10, every=60):
        by_hour.setdefault(when.hour, []).append(sample["p"]["flow"])
    assert statistics.mean(by_hour[7]) > 1.3 * statistics.mean(by_hour[3])


def test_more_speed_means_more_flow_and_closing_the_valve_less_flow_more_pressure() -> None:
    model = one_pump()
    pump = model.pumps["p"]
    flows = []
    for speed in (0.5, 0.7, 0.9, 1.0):
        pump.speed = speed
        model._solve()
        flows.append(pump.values["flow"])
    assert flows == sorted(flows) and flows[0] < flows[-1]
    pump.speed = 1.0
    results = []
    for opening in (1.0, 0.6, 0.3):
        model.valves["v"] = opening
        model._solve()
        results.append((pump.values["flow"], pump.values["pressure"]))
    assert results[0][0] > results[1][0] > results[2][0]
    assert results[0][1] < results[1][1] < results[2][1]


def _twin(fault: Fault, seconds: float = 1800) -> tuple[list[dict], list[dict]]:
    healthy = series(one_pump(), seconds)
    faulty = series(one_pump(faults=[fault]), seconds)
    return healthy, faulty


def _mean(samples: list[dict], key: str, device: str = "p") -> float:
    return statistics.mean(s[device][key] for s in samples if device in s)


def test_bearing_wear_raises_vibration_current_and_motor_temperature() -> None:
    healthy, faulty = _twin(Fault("bearing_wear", "p", start_s=300, ramp_s=600))
    assert _mean(healthy[:50], "vibration") == pytest.approx(_mean(faulty[:50], "vibration"))
    late_h, late_f = healthy[-60:], faulty[-60:]
    assert _mean(late_f, "vibration") > _mean(late_h, "vibration") + 6
    assert _mean(late_f, "motor_current") > _mean(late_h, "motor_current") * 1.03
    assert _mean(late_f, "motor_temperature") > _mean(late_h, "motor_temperature") + 3


def test_cavitation_cuts_flow_and_makes_pressure_and_vibration_erratic() -> None:
    healthy, faulty = _twin(Fault("cavitation", "p", start_s=0, ramp_s=60))
    late_h, late_f = healthy[-120:], faulty[-120:]
    # Less flow although the level controller drives the pump faster.
    assert _mean(late_f, "flow") < 0.85 * _mean(late_h, "flow")
    assert _mean(late_f, "speed") >= _mean(late_h, "speed")
    assert _mean(late_f, "vibration") > _mean(late_h, "vibration") + 1.5
    spread = statistics.pstdev(s["p"]["flow"] for s in late_f)
    assert spread > 3 * statistics.pstdev(s["p"]["flow"] for s in late_h)


def test_valve_closing_lowers_flow_and_raises_pressure() -> None:
    healthy, faulty = _twin(Fault("valve_closing", "v", start_s=0, ramp_s=300, severity=0.8))
    late_h, late_f = healthy[-60:], faulty[-60:]
    assert _mean(late_f, "position", "v") == pytest.approx(20, abs=1)
    assert _mean(late_f, "flow") < 0.75 * _mean(late_h, "flow")
    assert _mean(late_f, "pressure") > _mean(late_h, "pressure")


def test_sensor_faults_change_only_what_is_reported() -> None:
    model = one_pump(
        faults=[
            Fault("sensor_drift", "p", key="pressure", start_s=60),
            Fault("stuck_sensor", "p", key="flow", start_s=60),
            Fault("dropout", "k", start_s=60, ramp_s=0),
        ]
    )
    drift, stuck, seen_tank = [], [], 0
    for _ in range(720):
        model.step(5)
        sample, truth = model.sample(), model.truth()
        if model.t > 60:
            drift.append(sample["p"]["pressure"] - truth["p"]["pressure"])
            stuck.append(sample["p"]["flow"])
            seen_tank += "k" in sample
    assert drift[-1] > drift[len(drift) // 2] > drift[10] + 0.3  # grows with time
    assert len(set(stuck)) == 1 and not math.isnan(stuck[0])
    assert seen_tank == 0


def test_fault_specs_parse_and_the_demo_plant_is_valid() -> None:
    fault = Fault.parse("pump-2:sensor_drift:pressure@30*2")
    assert (fault.device, fault.kind, fault.key, fault.start_s, fault.severity) == (
        "pump-2",
        "sensor_drift",
        "pressure",
        30.0,
        2.0,
    )
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.parse("pump-1:melting")
    plant = demo_plant()
    plant.validate()
    assert {t for _, _, t in plant.devices()} == {"mqtt", "sparkplug", "http", "modbus", "opcua"}
    assert PlantSpec.from_dict(plant.to_dict()) == plant
