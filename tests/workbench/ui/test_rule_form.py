"""The Rules page's form offers the registered rule types that build from a form, and builds their bodies."""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench import plugins
from workbench.rules import types
from workbench.rules.types import Points, Rule, RuleState, RuleType, form_types, register_rule_type
from workbench.ui.pages.rules import rule_body

DEVICE = "6a1f8e8e-6f53-4f5e-9a51-3d0f0f0f0f01"
OTHER = "6a1f8e8e-6f53-4f5e-9a51-3d0f0f0f0f02"


def test_form_types_come_from_the_registry() -> None:
    assert form_types() == ["threshold", "comparison", "statistical"]

    class Dummy(RuleType):
        name = "dummy-form-type"

        def validate(self, condition: dict[str, Any]) -> dict[str, str]:
            return {}

        def evaluate(self, rule: Rule, points: Points, state: RuleState) -> pd.DataFrame:
            return types.empty_events()

        def from_form(self, values: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
            return {"key": values.get("key")}, values.get("device")

    register_rule_type(Dummy)
    try:
        assert form_types()[-1] == "dummy-form-type"
        body = rule_body({"type": "dummy-form-type", "severity": "info", "key": "k", "device": DEVICE})
        assert body["condition"] == {"key": "k"} and body["device_id"] == DEVICE
    finally:
        plugins.unregister(types.KIND, "dummy-form-type")
    assert "dummy-form-type" not in form_types()


def test_rule_bodies_of_each_form_type() -> None:
    base = {"severity": "warning", "device": DEVICE, "key": "t", "operator": ">", "value": 5}
    threshold = rule_body({**base, "type": "threshold", "duration": 30})
    assert threshold["condition"] == {"key": "t", "operator": ">", "value": 5, "duration_seconds": 30}
    assert threshold["device_id"] == DEVICE
    comparison = rule_body({**base, "type": "comparison", "right_device": OTHER, "right_key": "u"})
    assert comparison["device_id"] is None
    assert comparison["condition"]["right"] == {"device": OTHER, "key": "u"}
    statistical = rule_body({**base, "type": "statistical", "function": "mean", "window": "1h"})
    assert statistical["condition"]["window"] == "1h" and statistical["device_id"] == DEVICE
    for body in (threshold, comparison, statistical):
        assert types.rule_type(body["type"]).validate(body["condition"]) == {}
