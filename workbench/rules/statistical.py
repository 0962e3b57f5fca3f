"""Statistical rules: a function of a key over a sliding window, compared to a value (design §5.1, type 4).

``{"key": "temperature", "function": "stddev", "window": "1h", "operator": ">", "value": 5,
"min_points": 2}``. Functions: mean, stddev, min, max, range, zscore (newest value against the window's mean
and standard deviation), rate_of_change (units per second between the window's oldest and newest point).

The window is kept incrementally as per-(device, bucket) aggregates with buckets of window/60 (at least 1 s),
in a ``workbench.rules.windows.Window`` shared by every rule over the same key and window length: memory and
work grow with devices, not with points in the window. A rule is evaluated once per batch for each device that
received points, over the window ending at that device's newest point (its watermark); the window's oldest
edge is accurate to one bucket. Late points are added to their bucket while it is inside the window (the
aggregates commute: the order of arrival changes nothing); points whose bucket has left the window are
ignored. The firing flag per device is kept in ``rule_state``; the window itself is rebuilt from telemetry in
PostgreSQL after a restart, aggregated in SQL (the engine gives the evaluator a window loader).

History is read when the engine starts (the windows ending now) and for a device first seen with points
older than that (a replay, a backfill, a device added later). In the engine those reads run on its loader
threads (``state.context.background``): the device's points wait in the window until it is loaded and are
evaluated then, while every other device and rule goes on. A device first seen with points newer than the
start's load needs no read: nothing older can be stored that the start's load or the live batches did not
bring. Without a background loader (backtests) the reads happen inline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.rules.codes import DeviceCodes, grown
from workbench.rules.conditions import Errors, check_key, check_number, check_operator, compare, parse_window
from workbench.rules.types import (
    Points,
    Rule,
    RuleState,
    RuleType,
    empty_events,
    events_frame,
    register_rule_type,
)
from workbench.rules.windows import Window, bucket_ns

FUNCTIONS = ("mean", "stddev", "min", "max", "range", "zscore", "rate_of_change")
FIELDS = {"key", "function", "window", "operator", "value", "min_points"}


class StatisticalRule(RuleType):
    """A windowed statistic per device compared to a value."""

    name = "statistical"

    def from_form(self, values: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """Key, function over a window, operator and value, on the form's device."""
        condition = {
            "key": values.get("key"),
            "function": values.get("function"),
            "window": values.get("window"),
            "operator": values["operator"],
            "value": values.get("value"),
        }
        return condition, values.get("device")

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

    def warm(self, rule: Rule, state: RuleState, device_ids: list[str], now_ns: int) -> None:
        """Read the windows ending now from stored telemetry, before live batches arrive."""
        window = _window(rule, state, None)
        dev = window.codes.encode(np.array(device_ids, dtype=object))
        _mine(state, window.codes)[dev] = True
        window.warm(device_ids, now_ns)

    def pending(self, state: RuleState) -> bool:
        """A background window read finished: its devices' held points can be evaluated."""
        window: Window | None = state.memory.get("window")
        book = state.context.windows
        if window is None or book is None or book.get(window.key, window.window) is not window:
            return False
        if window.done_loads():
            return True
        if window.frame != book.frame or not len(window.released):
            return False
        return bool(_mine(state, window.codes)[window.released].any())

    def retire(self, rule: Rule, state: RuleState) -> None:
        """The rule changed or went: its window is read again (a device it alone read may have a gap)."""
        book = state.context.windows
        if book is not None:
            book.drop(str(rule.condition["key"]), int(parse_window(rule.condition["window"]) * 1e9))

    def backtest_step_seconds(self, condition: dict[str, Any]) -> float | None:
        """Replay in bucket-sized steps, as batches would arrive."""
        return bucket_ns(parse_window(condition["window"])) / 1e9

    def evaluate(self, rule: Rule, points: Points, state: RuleState) -> pd.DataFrame:
        """Add the points to the shared window, compute the statistic per touched device, emit changes."""
        c = rule.condition
        window = _window(rule, state, points)
        book = state.context.window_book()
        if book.private:
            book.frame += 1
        window.begin(book.frame)
        mine = _mine(state, window.codes)
        touched = np.zeros(0, np.int64)
        if len(points):
            if not points.ordered:  # backtests: the engine's frames are sorted by (device, time)
                points = points.take(np.lexsort((points.ts, points.device)))
            touched = window.feed(points.device, points.ts, points.value, book.frame)
            mine[points.device] = True
        released = window.released
        if len(released) and window.frame == book.frame:
            released = released[mine[released]]
            if len(released):
                touched = np.union1d(touched, released)
        if not len(touched):
            return empty_events()
        devices, n, stat = window.stats(touched, c["function"])
        if not len(devices):
            return empty_events()
        minimum = int(c.get("min_points") or (1 if c["function"] in ("mean", "min", "max") else 2))
        with np.errstate(invalid="ignore"):
            firing = (n >= minimum) & compare(stat, c["operator"], float(c["value"]))
        was = _firing(state, window.codes)
        changed = np.nonzero(firing != was[devices])[0]
        if not len(changed):
            return empty_events()
        was[devices[changed]] = firing[changed]
        ids = window.codes.decode(devices[changed])
        marks = window.watermarks(devices[changed])
        for device_id, fire, mark in zip(ids, firing[changed], marks, strict=True):
            state.put(str(device_id), {"firing": bool(fire), "wm": int(mark)})
        kinds = np.where(firing[changed], "fire", "clear").astype(object)
        return events_frame(ids, kinds, marks, c["key"], stat[changed], float(c["value"]))


def _window(rule: Rule, state: RuleState, points: Points | None) -> Window:
    """The shared window of the rule's key and length (the engine's book, or the rule's own)."""
    mem, context = state.memory, state.context
    book = context.window_book()
    spec = mem.get("spec")
    if spec is None:  # parsed once: the state is dropped when the rule changes
        spec = mem["spec"] = (str(rule.condition["key"]), int(parse_window(rule.condition["window"]) * 1e9))
    key, length = spec
    codes = context.device_codes()

    def build() -> Window:
        reference = context.reference
        if reference is not None:
            ref = float(reference(key))
        else:  # any value of the key keeps the sums tame
            ref = float(points.value[0]) if points is not None and len(points) else 0.0
        return Window(key, length, ref, codes, context.window_loader, context.background)

    window = mem["window"] = book.make(key, length, build)
    return window


def _mine(state: RuleState, codes: DeviceCodes) -> np.ndarray:
    """Devices whose points the rule received (or warmed), as a boolean array over codes."""
    mine = state.memory["mine"] = grown(state.memory.get("mine", np.zeros(0, bool)), len(codes), False)
    return mine


def _firing(state: RuleState, codes: DeviceCodes) -> np.ndarray:
    """Whether the rule fires per device code (loaded from ``rule_state`` the first time)."""
    firing = state.memory.get("firing")
    if firing is None:
        firing = np.zeros(len(codes), bool)
        for device_id, saved in state.devices.items():
            code = codes.code(device_id)
            firing = grown(firing, code + 1, False)
            firing[code] = bool(saved.get("firing", False))
    firing = state.memory["firing"] = grown(firing, len(codes), False)
    return firing


register_rule_type(StatisticalRule)
