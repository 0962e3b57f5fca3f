"""``workbench.rules.alerts.change``: the one acknowledge/resolve path of the API and the Alerts page."""

from __future__ import annotations

import uuid

import pytest

from tests.workbench.rules.conftest import Rig
from workbench.live.bus import ALERT_UPDATE
from workbench.rules.alerts import change


def test_change_announces_the_rule_and_device_the_engine_needs(rig: Rig) -> None:
    [device] = rig.devices(1)
    rule = rig.rule("threshold", {"key": "x", "operator": ">", "value": 1})
    alert_id = uuid.UUID(rig.alert(rule, device))
    events: list[dict] = []
    rig.platform.bus.subscribe(ALERT_UPDATE, lambda _topic, payload: events.append(payload))
    row = change(rig.platform, alert_id, "acknowledged", None, "looking")
    assert row is not None and row["status"] == "acknowledged" and row["ack_comment"] == "looking"
    with pytest.raises(ValueError, match="already acknowledged"):
        change(rig.platform, alert_id, "acknowledged", None, None)
    change(rig.platform, alert_id, "resolved", None, "fixed")
    assert [(e["status"], e["rule_id"], e["device_id"]) for e in events] == [
        ("acknowledged", rule, device),
        ("resolved", rule, device),
    ]
    assert change(rig.platform, uuid.uuid4(), "resolved", None, None) is None
