"""Comparison and statistical rules on batches; the statistical window rebuilt from telemetry."""

from __future__ import annotations

import uuid

import numpy as np

from tests.workbench.rules.conftest import Rig
from workbench.rules.validation import validate_rule


def test_comparison_as_of_join_with_offset_and_tolerance(rig: Rig) -> None:
    inlet, outlet = rig.devices(2)
    condition = {
        "left": {"device": outlet, "key": "temp"},
        "operator": ">",
        "right": {"device": inlet, "key": "temp"},
        "offset": 5,
        "tolerance_seconds": 30,
    }
    assert (
        validate_rule(
            {"name": "c", "type": "comparison", "condition": condition, "action": {"type": "alert"}}
        )
        == {}
    )
    assert set(
        validate_rule(
            {
                "name": "c",
                "type": "comparison",
                "condition": {"left": {"key": 1}, "operator": ">"},
                "action": {"type": "alert"},
            }
        )
    ) == {"condition.left.device", "condition.left.key", "condition.right"}
    rule = rig.rule("comparison", condition)
    engine = rig.start()
    # outlet 22 vs inlet 20 + 5: no; outlet 26 at t=10 vs inlet 20 (t=0) -> fires with threshold 25.
    rig.evaluate(engine, [(0, inlet, "temp", 20), (1, outlet, "temp", 22), (10, outlet, "temp", 26)])
    [alert] = rig.alerts(rule)
    assert (str(alert["device_id"]), alert["value"], alert["threshold"]) == (outlet, 26, 25)
    # The inlet rises in the next batch: the pair no longer holds -> auto-resolved.
    rig.evaluate(engine, [(12, inlet, "temp", 30)])
    assert rig.alerts(rule)[0]["status"] == "resolved"
    # Too far apart in time (inlet last seen at 12 s, outlet at 100 s): not compared.
    rig.evaluate(engine, [(100, outlet, "temp", 90)])
    assert len(rig.alerts(rule)) == 1


def test_statistical_functions_over_a_window(rig: Rig) -> None:
    a, b = rig.devices(2, type="mixer", area=f"hall-{uuid.uuid4().hex[:4]}")
    stddev = rig.rule(
        "statistical",
        {"key": "vib", "function": "stddev", "window": "10m", "operator": ">", "value": 2},
        target={"device_ids": [a, b]},
    )
    rate = rig.rule(
        "statistical",
        {"key": "vib", "function": "rate_of_change", "window": "1m", "operator": ">", "value": 0.5},
        target={"device_id": b},
    )
    engine = rig.start()
    steady = [(s, a, "vib", 10 + (0.1 if s % 2 else -0.1)) for s in range(0, 60, 5)]
    noisy = [
        (s, b, "vib", v)
        for s, v in zip(range(0, 60, 5), [10, 14, 6, 15, 5, 13, 7, 16, 4, 12, 8, 15], strict=True)
    ]
    rig.evaluate(engine, steady + noisy)
    [alert] = rig.alerts(stddev)
    expected = float(np.std([v for *_, v in noisy], ddof=1))
    assert str(alert["device_id"]) == b and abs(alert["value"] - expected) < 1e-9
    assert rig.alerts(rate) == []
    rig.evaluate(engine, [(70, b, "vib", 60)])  # (60 - 6) / (70 - 10) s: the minute ending at 70 s
    [fast] = rig.alerts(rate)
    assert abs(fast["value"] - 0.9) < 1e-9


def test_statistical_window_rebuilt_from_telemetry_after_restart(rig: Rig) -> None:
    [d] = rig.devices(1)
    rule = rig.rule(
        "statistical",
        {"key": "flow", "function": "mean", "window": "1h", "operator": ">", "value": 50, "min_points": 3},
        target={"device_id": d},
    )
    rig.store(d, "flow", [(0, 60.0), (600, 60.0), (1200, 60.0)])
    engine = rig.start()
    # One new point of 45: alone it is below 50, but the window (60, 60, 60, 45) averages 56.25.
    rig.evaluate(engine, [(1800, d, "flow", 45)])
    [alert] = rig.alerts(rule)
    assert alert["value"] == 56.25
    # Late point older than the window is ignored; a low on-time point brings the mean under 50.
    rig.evaluate(engine, [(-7200, d, "flow", 1000), (1900, d, "flow", 0)])
    assert rig.alerts(rule)[0]["status"] == "resolved"
