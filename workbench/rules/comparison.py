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
from workbench.rules.types import Rule, RuleState, RuleType, empty_events, register_rule_type

FIELDS = {"left", "right", "operator", "offset", "tolerance_seconds", "duration_seconds"}


class ComparisonRule(RuleType):
    """Compare two devices' keys with an optional offset and time tolerance."""

    name = "comparison"

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

    def evaluate(self, rule: Rule, points: pd.DataFrame, state: RuleState) -> pd.DataFrame:
        """As-of join of the two sides in event time, then the duration gate on the left device."""
        c = rule.condition
        left_dev, right_dev = str(c["left"]["device"]), str(c["right"]["device"])
        is_left = ((points["device_id"] == left_dev) & (points["key"] == c["left"]["key"])).to_numpy()
        is_right = ((points["device_id"] == right_dev) & (points["key"] == c["right"]["key"])).to_numpy()
        rows = points[is_left | is_right].sort_values("ts", kind="stable")
        if rows.empty:
            return empty_events()
        side_left = ((rows["device_id"] == left_dev) & (rows["key"] == c["left"]["key"])).to_numpy()
        prior = state.devices.get(left_dev, {})
        values = rows["value"].to_numpy(dtype=np.float64)
        ts = rows["ts"].to_numpy(dtype=np.int64)
        lv, lt = _asof(values, ts, side_left, prior.get("left"))
        rv, rt = _asof(values, ts, ~side_left, prior.get("right"))
        usable = ~np.isnan(lv) & ~np.isnan(rv)
        tolerance = c.get("tolerance_seconds")
        if tolerance is not None:
            usable &= np.abs(lt - rt) <= tolerance * 1e9
        threshold = rv + float(c.get("offset") or 0)
        frame = pd.DataFrame(
            {
                "device_id": left_dev,
                "ts": ts,
                "key": c["left"]["key"],
                "value": lv,
                "threshold": threshold,
                "cond": compare(lv, c["operator"], threshold),
            }
        )[usable]
        events = gate(frame, state, float(c.get("duration_seconds") or 0))
        after = dict(state.devices.get(left_dev, {}))
        after["left"] = [float(lt[-1]), float(lv[-1])] if not np.isnan(lv[-1]) else prior.get("left")
        after["right"] = [float(rt[-1]), float(rv[-1])] if not np.isnan(rv[-1]) else prior.get("right")
        state.put(left_dev, after, persist=left_dev in state.dirty)
        return events


def _asof(values: np.ndarray, ts: np.ndarray, mine: np.ndarray, prior: Any) -> tuple[np.ndarray, np.ndarray]:
    """Newest value (and its time) of one side at every row, seeded from the prior state."""
    series_v = pd.Series(np.where(mine, values, np.nan))
    series_t = pd.Series(np.where(mine, ts.astype(np.float64), np.nan))
    if prior:
        first_v = series_v.ffill().fillna(float(prior[1]))
        first_t = series_t.ffill().fillna(float(prior[0]))
        return first_v.to_numpy(), first_t.to_numpy()
    return series_v.ffill().to_numpy(), series_t.ffill().to_numpy()


register_rule_type(ComparisonRule)
