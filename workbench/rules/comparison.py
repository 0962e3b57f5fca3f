"""Comparison rules: one device's key against another's (design §5.1, type 2).

``{"left": {"device": ID, "key": K}, "operator": ">", "right": {"device": ID, "key": K}, "offset": 0,
"tolerance_seconds": 60, "duration_seconds": 0}`` holds when ``left operator right + offset``. It is evaluated
at every point of either side against the newest known value of the other side (an as-of join in event
time); with ``tolerance_seconds`` a pair whose two values are further apart in time is not compared. Alerts
belong to the left device; the alert's threshold is ``right + offset``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.rules.conditions import Errors, check_key, check_number, check_operator, compare, is_uuid
from workbench.rules.gate import gate
from workbench.rules.types import Points, Rule, RuleState, RuleType, empty_events, register_rule_type

FIELDS = {"left", "right", "operator", "offset", "tolerance_seconds", "duration_seconds"}


class ComparisonRule(RuleType):
    """Compare two devices' keys with an optional offset and time tolerance."""

    name = "comparison"

    def from_form(self, values: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The form's device and key against the right device and key; no single target device."""
        condition = {
            "left": {"device": values.get("device"), "key": values.get("key")},
            "operator": values["operator"],
            "right": {"device": values.get("right_device"), "key": values.get("right_key")},
        }
        return condition, None

    def validate(self, condition: dict[str, Any]) -> Errors:
        """Errors naming the field."""
        errors: Errors = {}
        for side in ("left", "right"):
            spec = condition.get(side)
            if not isinstance(spec, dict):
                errors[f"condition.{side}"] = "required: {device, key}"
                continue
            if not is_uuid(spec.get("device")):
                errors[f"condition.{side}.device"] = "required: a device id (UUID)"
            check_key(errors, f"condition.{side}.key", spec.get("key"))
        check_operator(errors, "condition.operator", condition.get("operator"))
        check_number(errors, "condition.offset", condition.get("offset"), False)
        check_number(errors, "condition.tolerance_seconds", condition.get("tolerance_seconds"), False, 0)
        check_number(errors, "condition.duration_seconds", condition.get("duration_seconds"), False, 0)
        for extra in sorted(set(condition) - FIELDS):
            errors[f"condition.{extra}"] = "unknown field"
        return errors

    def keys(self, condition: dict[str, Any]) -> set[str]:
        """Both sides' keys."""
        return {condition["left"]["key"], condition["right"]["key"]}

    def devices(self, rule: Rule) -> set[str] | None:
        """Both sides' devices, whatever the target says."""
        return {str(rule.condition["left"]["device"]), str(rule.condition["right"]["device"])}

    def evaluate(self, rule: Rule, points: Points, state: RuleState) -> pd.DataFrame:
        """As-of join of the two sides in event time, then the duration gate on the left device."""
        c = rule.condition
        left_dev, right_dev = str(c["left"]["device"]), str(c["right"]["device"])
        devices = points.device_id
        keys = points.key
        is_left = (devices == left_dev) & (keys == c["left"]["key"])
        is_right = (devices == right_dev) & (keys == c["right"]["key"])
        chosen = np.nonzero(is_left | is_right)[0]
        if not len(chosen):
            return empty_events()
        ts = points.ts[chosen]
        order = np.argsort(ts, kind="stable")
        chosen, ts = chosen[order], ts[order]
        values = points.value[chosen]
        side_left = is_left[chosen]
        sides = state.memory.get("sides")
        if sides is None:
            saved = state.devices.get(left_dev, {})
            sides = state.memory["sides"] = {"left": saved.get("left"), "right": saved.get("right")}
        lv, lt = _asof(values, ts, side_left, sides["left"])
        rv, rt = _asof(values, ts, ~side_left, sides["right"])
        usable = ~np.isnan(lv) & ~np.isnan(rv)
        tolerance = c.get("tolerance_seconds")
        if tolerance is not None:
            usable &= np.abs(lt - rt) <= tolerance * 1e9
        if not np.isnan(lv[-1]):
            sides["left"] = [float(lt[-1]), float(lv[-1])]
        if not np.isnan(rv[-1]):
            sides["right"] = [float(rt[-1]), float(rv[-1])]
        codes = state.context.device_codes()
        code = codes.code(left_dev)
        threshold = (rv + float(c.get("offset") or 0))[usable]
        with np.errstate(invalid="ignore"):
            cond = compare(lv[usable], c["operator"], threshold)
        n = int(usable.sum())
        frame = Points(
            np.full(n, code, dtype=np.int64),
            np.full(n, left_dev, dtype=object),
            np.full(n, c["left"]["key"], dtype=object),
            ts[usable],
            lv[usable],
            ordered=True,
        )
        events = gate(frame, cond, threshold, state, float(c.get("duration_seconds") or 0))
        if left_dev in state.dirty:
            state.devices[left_dev] = {**state.devices[left_dev], **sides}
        return events


def _asof(values: np.ndarray, ts: np.ndarray, mine: np.ndarray, prior: Any) -> tuple[np.ndarray, np.ndarray]:
    """Newest value (and its time) of one side at every row, seeded from the prior state."""
    index = np.where(mine, np.arange(len(values)), -1)
    index = np.maximum.accumulate(index)
    seed_v, seed_t = (float(prior[1]), float(prior[0])) if prior else (np.nan, np.nan)
    value = np.where(index >= 0, values[np.maximum(index, 0)], seed_v)
    when = np.where(index >= 0, ts[np.maximum(index, 0)].astype(np.float64), seed_t)
    return value, when


register_rule_type(ComparisonRule)
