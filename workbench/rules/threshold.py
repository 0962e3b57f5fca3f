"""Threshold rules: ``key operator value`` held for ``duration_seconds`` (design §5.1, type 1)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench.rules.conditions import Errors, check_key, check_number, check_operator, compare
from workbench.rules.gate import gate
from workbench.rules.types import Points, Rule, RuleState, RuleType, register_rule_type

FIELDS = {"key", "operator", "value", "duration_seconds"}


class ThresholdRule(RuleType):
    """``{"key": "temperature", "operator": ">", "value": 50, "duration_seconds": 300}``."""

    name = "threshold"

    def validate(self, condition: dict[str, Any]) -> Errors:
        """Errors naming the field."""
        errors: Errors = {}
        check_key(errors, "condition.key", condition.get("key"))
        check_operator(errors, "condition.operator", condition.get("operator"))
        check_number(errors, "condition.value", condition.get("value"))
        check_number(errors, "condition.duration_seconds", condition.get("duration_seconds"), False, 0)
        for extra in sorted(set(condition) - FIELDS):
            errors[f"condition.{extra}"] = "unknown field"
        return errors

    def from_form(self, values: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """Key, operator, value and an optional duration, on the form's device."""
        condition = {"key": values.get("key"), "operator": values["operator"], "value": values.get("value")}
        if values.get("duration"):
            condition["duration_seconds"] = values["duration"]
        return condition, values.get("device")

    def evaluate(self, rule: Rule, points: Points, state: RuleState) -> pd.DataFrame:
        """Fire when the condition has held for the duration (see ``workbench.rules.gate``)."""
        condition = rule.condition
        threshold = float(condition["value"])
        values = points.value
        cond = compare(values, condition["operator"], threshold)
        return gate(points, cond, threshold, state, float(condition.get("duration_seconds") or 0))


register_rule_type(ThresholdRule)
