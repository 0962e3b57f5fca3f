"""Statistical rules: a function of a key over a sliding window, compared to a value (design §5.1, type 4).

``{"key": "temperature", "function": "stddev", "window": "1h", "operator": ">", "value": 5,
"min_points": 2}``. Functions: mean, stddev, min, max, range, zscore (newest value against the window's mean
and standard deviation), rate_of_change (units per second between the window's first and newest point).

The window is kept as per-(device, bucket) partial aggregates (count, sum, sum of squares, min, max, first
and newest point) with buckets of window/60 (at least 1 s), so memory and work grow with devices, not points.
A rule is evaluated once per batch for each device that received points, over the window ending at that
device's newest point (its watermark); the window's oldest edge is accurate to one bucket. Late points inside
the window are added to their bucket (aggregates commute); points older than the window are ignored. The
firing flag per device is kept in ``rule_state``; the window itself is rebuilt from telemetry in PostgreSQL
after a restart (the engine gives the evaluator a history loader).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from workbench.rules.conditions import Errors, check_key, check_number, check_operator, compare, parse_window
from workbench.rules.types import Rule, RuleState, RuleType, empty_events, register_rule_type

FUNCTIONS = ("mean", "stddev", "min", "max", "range", "zscore", "rate_of_change")
FIELDS = {"key", "function", "window", "operator", "value", "min_points"}
# loader(device_ids, key, start_ns, end_ns) -> frame (device_id, ts, value) of stored points in [start, end)
HistoryLoader = Callable[[list[str], str, int, int], pd.DataFrame]
_AGG_COLUMNS = ["device_id", "bucket", "n", "s", "ss", "mn", "mx", "ft", "fv", "lt", "lv"]


def bucket_ns(window_s: float) -> int:
    """Bucket width of a window: window/60, at least one second."""
    return int(max(1.0, window_s / 60) * 1e9)


class StatisticalRule(RuleType):
    """A windowed statistic per device compared to a value."""

    name = "statistical"

    def validate(self, condition: dict[str, Any]) -> Errors:
        """Errors naming the field."""
        errors: Errors = {}
        check_key(errors, "condition.key", condition.get("key"))
        if condition.get("function") not in FUNCTIONS:
            errors["condition.function"] = f"must be one of {', '.join(FUNCTIONS)}"
        try:
            parse_window(condition.get("window"))
        except ValueError as error:
            errors["condition.window"] = str(error)
        check_operator(errors, "condition.operator", condition.get("operator"))
        check_number(errors, "condition.value", condition.get("value"))
        check_number(errors, "condition.min_points", condition.get("min_points"), False, 1)
        for extra in sorted(set(condition) - FIELDS):
            errors[f"condition.{extra}"] = "unknown field"
        return errors

    def backtest_step_seconds(self, condition: dict[str, Any]) -> float | None:
        """Replay in bucket-sized steps, as batches would arrive."""
        return bucket_ns(parse_window(condition["window"])) / 1e9

    def evaluate(self, rule: Rule, points: pd.DataFrame, state: RuleState) -> pd.DataFrame:
        """Update the window aggregates, compute the statistic per touched device, emit changes."""
        c = rule.condition
        window = int(parse_window(c["window"]) * 1e9)
        width = bucket_ns(window / 1e9)
        mem = state.memory
        if points.empty:
            return empty_events()
        if "ref" not in mem:
            mem["ref"] = float(points["value"].iloc[0])
            mem["aggs"] = _empty_aggs()
            mem["seen"] = set()
        _seed(mem, points, c["key"], window, width, state)
        marks = points.groupby("device_id", sort=False)["ts"].max()
        old = np.array([state.devices.get(d, {}).get("wm", np.iinfo(np.int64).min) for d in marks.index])
        marks = pd.Series(np.maximum(marks.to_numpy(), old), index=marks.index)
        cutoff = points["device_id"].map(marks).to_numpy() - window
        fresh = points[points["ts"].to_numpy() >= cutoff]
        aggs = pd.concat([mem["aggs"], _aggregate(fresh, width, mem["ref"])], ignore_index=True)
        all_marks = {d: s.get("wm") for d, s in state.devices.items()}
        all_marks.update(marks.to_dict())
        edge = aggs["device_id"].map(all_marks).to_numpy(dtype=np.float64) - window
        aggs = aggs[aggs["bucket"].to_numpy() + width > edge].reset_index(drop=True)
        mem["calls"] = mem.get("calls", 0) + 1
        if mem["calls"] % 20 == 0:
            aggs = _compact(aggs)
        mem["aggs"] = aggs
        touched = aggs[aggs["device_id"].isin(marks.index)]
        if touched.empty:
            return empty_events()
        stats = _statistic(touched, c["function"], mem["ref"])
        n = touched.groupby("device_id", sort=False)["n"].sum().reindex(stats.index)
        minimum = int(c.get("min_points") or (1 if c["function"] in ("mean", "min", "max") else 2))
        with np.errstate(invalid="ignore"):
            firing = (n.to_numpy() >= minimum) & compare(stats.to_numpy(), c["operator"], float(c["value"]))
        return self._events(c, stats, firing, marks, state)

    def _events(
        self, c: dict[str, Any], stats: pd.Series, firing: np.ndarray, marks: pd.Series, state: RuleState
    ) -> pd.DataFrame:
        rows = []
        for device, value, fire in zip(stats.index, stats.to_numpy(), firing, strict=True):
            was = bool(state.devices.get(device, {}).get("firing", False))
            wm = int(marks[device])
            state.put(device, {"firing": bool(fire), "wm": wm}, persist=bool(fire) != was)
            if bool(fire) != was:
                rows.append(
                    (device, "fire" if fire else "clear", wm, c["key"], float(value), float(c["value"]))
                )
        if not rows:
            return empty_events()
        return pd.DataFrame(rows, columns=["device_id", "kind", "ts", "key", "value", "threshold"])


def _empty_aggs() -> pd.DataFrame:
    return pd.DataFrame(
        {name: pd.Series(dtype=object if name == "device_id" else "float64") for name in _AGG_COLUMNS}
    )


def _aggregate(points: pd.DataFrame, width: int, ref: float) -> pd.DataFrame:
    if points.empty:
        return _empty_aggs()
    ts = points["ts"].to_numpy(dtype=np.int64)
    shifted = points["value"].to_numpy(dtype=np.float64) - ref
    frame = pd.DataFrame(
        {"device_id": points["device_id"].to_numpy(), "bucket": ts // width * width, "ts": ts, "v": shifted}
    ).sort_values("ts", kind="stable")
    frame["v2"] = frame["v"] * frame["v"]
    g = frame.groupby(["device_id", "bucket"], sort=False)
    out = g.agg(
        n=("v", "size"),
        s=("v", "sum"),
        ss=("v2", "sum"),
        mn=("v", "min"),
        mx=("v", "max"),
        ft=("ts", "first"),
        fv=("v", "first"),
        lt=("ts", "last"),
        lv=("v", "last"),
    ).reset_index()
    return out.astype({"bucket": "float64", "n": "float64", "ft": "float64", "lt": "float64"})


def _compact(aggs: pd.DataFrame) -> pd.DataFrame:
    if aggs.empty:
        return aggs
    first = (
        aggs.sort_values("ft", kind="stable")
        .groupby(["device_id", "bucket"], sort=False)[["ft", "fv"]]
        .first()
    )
    last = (
        aggs.sort_values("lt", kind="stable")
        .groupby(["device_id", "bucket"], sort=False)[["lt", "lv"]]
        .last()
    )
    sums = aggs.groupby(["device_id", "bucket"], sort=False).agg(
        n=("n", "sum"), s=("s", "sum"), ss=("ss", "sum"), mn=("mn", "min"), mx=("mx", "max")
    )
    return sums.join(first).join(last).reset_index()[_AGG_COLUMNS]


def _statistic(aggs: pd.DataFrame, function: str, ref: float) -> pd.Series:
    g = aggs.groupby("device_id", sort=False)
    n = g["n"].sum()
    s = g["s"].sum()
    mean = s / n
    if function == "mean":
        return mean + ref
    if function == "min":
        return g["mn"].min() + ref
    if function == "max":
        return g["mx"].max() + ref
    if function == "range":
        return g["mx"].max() - g["mn"].min()
    var = ((g["ss"].sum() - s * s / n) / (n - 1)).clip(lower=0)
    std = np.sqrt(var.where(n > 1))
    last = aggs.loc[g["lt"].idxmax()].set_index("device_id")
    if function == "stddev":
        return std
    if function == "zscore":
        return (last["lv"] - mean) / std.where(std > 0)
    first = aggs.loc[g["ft"].idxmin()].set_index("device_id")
    seconds = (last["lt"] - first["ft"]) / 1e9
    return (last["lv"] - first["fv"]) / seconds.where(seconds > 0)


def _seed(
    mem: dict[str, Any], points: pd.DataFrame, key: str, window: int, width: int, state: RuleState
) -> None:
    """Rebuild the window of devices seen for the first time from stored telemetry (after a restart)."""
    loader: HistoryLoader | None = mem.get("loader")
    new = sorted(set(points["device_id"].unique()) - mem["seen"])
    if not new:
        return
    mem["seen"].update(new)
    if loader is None:
        return
    first = points[points["device_id"].isin(new)].groupby("device_id")["ts"].min()
    start, end = int(first.min()) - window, int(first.max())
    history = loader(new, key, start, end)
    if history.empty:
        return
    history = history[history["ts"].to_numpy() < history["device_id"].map(first).to_numpy()]
    mem["aggs"] = pd.concat([mem["aggs"], _aggregate(history, width, mem["ref"])], ignore_index=True)
    for device, ts in history.groupby("device_id")["ts"].max().items():
        known = state.devices.get(str(device), {})
        if int(ts) > known.get("wm", np.iinfo(np.int64).min):
            state.devices[str(device)] = {**known, "wm": int(ts)}


register_rule_type(StatisticalRule)
