"""Threshold rules on batches: alerts, dedup, auto-resolve, durations across restarts, late points."""

from __future__ import annotations

from sqlalchemy import select

from tests.workbench.rules.conftest import Rig, frame, publish
from workbench.db.tables import rules
from workbench.rules.types import rule_type
from workbench.rules.validation import validate_rule


def test_validation_names_the_field() -> None:
    errors = validate_rule(
        {
            "name": "",
            "type": "threshold",
            "condition": {"key": "t", "operator": "=>", "duration_seconds": -1},
            "action": {"type": "webhook"},
            "target": {"area": ""},
            "cooldown_seconds": -5,
        }
    )
    assert set(errors) == {
        "name",
        "condition.operator",
        "condition.value",
        "condition.duration_seconds",
        "action.url",
        "target.area",
        "cooldown_seconds",
    }
    wrong = validate_rule({"name": "x", "type": "nope", "condition": {}, "action": {"type": "alert"}})
    assert list(wrong) == ["type"]
    assert wrong["type"].startswith("must be one of comparison, ") and "threshold" in wrong["type"]
    ok = {
        "name": "hot",
        "type": "threshold",
        "condition": {"key": "temperature", "operator": ">", "value": 50},
        "action": [{"type": "alert", "severity": "critical"}],
        "target": {"device_type": "pump"},
    }
    assert validate_rule(ok) == {}
    assert rule_type("threshold").validate({"key": "t", "operator": ">", "value": 1, "bogus": 2}) == {
        "condition.bogus": "unknown field"
    }


def test_instant_threshold_raises_once_then_auto_resolves(rig: Rig) -> None:
    a, b = rig.devices(2, type="boiler")
    rule = rig.rule(
        "threshold",
        {"key": "temperature", "operator": ">", "value": 50},
        target={"device_type": "boiler"},
        action={
            "type": "alert",
            "severity": "critical",
            "message": "{device} hot: {key}={value} > {threshold}",
        },
    )
    engine = rig.start()
    seen: list[dict] = []
    rig.platform.bus.subscribe("alert", lambda topic, payload: seen.append(payload))
    publish(rig.platform, [(0, a, "temperature", 40), (1, a, "temperature", 55.5), (1, b, "temperature", 45)])
    assert engine.idle()
    [alert] = rig.alerts(rule)
    assert (str(alert["device_id"]), alert["severity"], alert["status"]) == (a, "critical", "active")
    assert (alert["key"], alert["value"], alert["threshold"]) == ("temperature", 55.5, 50.0)
    assert alert["message"].endswith("hot: temperature=55.5 > 50") and "dev-" in alert["message"]
    assert [p["id"] for p in seen] == [str(alert["id"])]
    publish(rig.platform, [(2, a, "temperature", 60), (3, a, "temperature", 61)])
    assert engine.idle()
    assert len(rig.alerts(rule)) == 1  # still the one open alert
    with rig.platform.engine.connect() as conn:
        counted = conn.execute(
            select(rules.c.trigger_count, rules.c.last_triggered).where(rules.c.id == rule)
        ).one()
    assert counted == (1, alert["triggered_at"])
    publish(rig.platform, [(4, a, "temperature", 20)])
    assert engine.idle()
    [alert] = rig.alerts(rule)
    assert alert["status"] == "resolved" and alert["resolve_comment"].startswith("auto-resolved")


def test_duration_survives_a_restart(rig: Rig) -> None:
    [d] = rig.devices(1)
    rule = rig.rule(
        "threshold",
        {"key": "pressure", "operator": ">=", "value": 10, "duration_seconds": 300},
        target={"device_id": d},
    )
    first = rig.start()
    rig.evaluate(first, [(0, d, "pressure", 9), (100, d, "pressure", 12), (250, d, "pressure", 13)])
    assert rig.alerts(rule) == []
    first.stop()
    second = rig.start()  # a new process: state comes from rule_state
    rig.evaluate(second, [(350, d, "pressure", 11)])
    assert rig.alerts(rule) == []  # 250 s held so far (since t=100)
    rig.evaluate(second, [(400, d, "pressure", 11)])
    [alert] = rig.alerts(rule)
    assert alert["triggered_at"].timestamp() == frame([(400, d, "pressure", 0)])["timestamp"][0].timestamp()
    # A dip resets the run: held again 200 s only -> nothing new after the clear.
    rig.evaluate(second, [(410, d, "pressure", 5), (420, d, "pressure", 12), (620, d, "pressure", 12)])
    [alert] = rig.alerts(rule)
    assert alert["status"] == "resolved"


def test_out_of_order_and_late_points(rig: Rig) -> None:
    d, e = rig.devices(2)
    held = rig.rule(
        "threshold",
        {"key": "level", "operator": ">", "value": 5, "duration_seconds": 60},
        target={"device_ids": [d]},
    )
    instant = rig.rule("threshold", {"key": "level", "operator": ">", "value": 100}, target={"device_id": e})
    engine = rig.start()
    # Out of order inside one batch: sorted by event time first, so the run 0..60 s holds.
    rig.evaluate(engine, [(60, d, "level", 7), (0, d, "level", 6), (30, d, "level", 8)])
    [alert] = rig.alerts(held)
    assert alert["value"] == 7
    # A late point (before the watermark) below the threshold does not clear the alert...
    rig.evaluate(engine, [(10, d, "level", 1)])
    assert rig.alerts(held)[0]["status"] == "active"
    # ...but an on-time one does.
    rig.evaluate(engine, [(70, d, "level", 1)])
    assert rig.alerts(held)[0]["status"] == "resolved"
    # Instantaneous rules still fire on late points: the excursion happened.
    rig.evaluate(engine, [(100, e, "level", 1)])
    rig.evaluate(engine, [(50, e, "level", 150)])
    [late] = rig.alerts(instant)
    assert late["value"] == 150 and late["status"] == "active"
    # The excursion counts as holding: the next on-time point below the threshold resolves it.
    rig.evaluate(engine, [(110, e, "level", 1)])
    assert rig.alerts(instant)[0]["status"] == "resolved"


def test_cooldown_in_event_time(rig: Rig) -> None:
    [d] = rig.devices(1)
    rule = rig.rule(
        "threshold",
        {"key": "rpm", "operator": ">", "value": 10},
        target={"device_id": d},
        cooldown_seconds=60,
    )
    engine = rig.start()
    rig.evaluate(engine, [(0, d, "rpm", 20), (5, d, "rpm", 0), (30, d, "rpm", 20), (40, d, "rpm", 0)])
    assert len(rig.alerts(rule)) == 1  # the second excursion is inside the cooldown
    rig.evaluate(engine, [(90, d, "rpm", 20)])
    assert [a["status"] for a in rig.alerts(rule)] == ["resolved", "active"]


def test_clear_and_fire_again_in_one_frame(rig: Rig) -> None:
    [d] = rig.devices(1)
    rule = rig.rule("threshold", {"key": "amps", "operator": ">", "value": 10}, target={"device_id": d})
    engine = rig.start()
    rig.evaluate(engine, [(0, d, "amps", 20)])
    # The open alert is resolved before the new one is inserted (else the open one would absorb it)...
    rig.evaluate(engine, [(1, d, "amps", 0), (2, d, "amps", 30)])
    assert [(a["status"], a["value"]) for a in rig.alerts(rule)] == [("resolved", 20), ("active", 30)]
    # ...and an alert raised and cleared inside one frame is inserted, then resolved.
    rig.evaluate(engine, [(3, d, "amps", 0), (4, d, "amps", 40), (5, d, "amps", 0)])
    assert [(a["status"], a["value"]) for a in rig.alerts(rule)] == [
        ("resolved", 20),
        ("resolved", 30),
        ("resolved", 40),
    ]
    # At one timestamp, arrival order decides: low then high clears and fires again (a new alert).
    rig.evaluate(engine, [(6, d, "amps", 50)])
    rig.evaluate(engine, [(7, d, "amps", 0), (7, d, "amps", 60)])
    assert [(a["status"], a["value"]) for a in rig.alerts(rule)][-2:] == [("resolved", 50), ("active", 60)]
