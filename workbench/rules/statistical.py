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
after a restart, aggregated in SQL (the engine gives the evaluator a window loader).

History is read when the engine starts (the windows ending now) and for a device first seen with points
older than that (a replay, a backfill, a device added later). In the engine those reads run on its loader
threads (``state.memory["background"]``): the device's points wait in the rule's memory until its window
is loaded and are evaluated then, while every other device and rule goes on. A device first seen with
points newer than the start's load needs no read: nothing older can be stored that the start's load or the
live batches did not bring. Without a background loader (backtests) the reads happen inline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
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

log = logging.getLogger(__name__)
FUNCTIONS = ("mean", "stddev", "min", "max", "range", "zscore", "rate_of_change")
FIELDS = {"key", "function", "window", "operator", "value", "min_points"}
# window_loader(device_ids, first_ns, key, window_ns, width_ns, ref) -> rows of bucket aggregates
# (device_id, bucket, n, s, ss, mn, mx, ft, fv, lt, lv) of the stored points of each device in
# [first - window, first): see workbench.rules.store.window_aggregates.
WindowLoader = Callable[[list[str], list[int], str, int, int, float], list[tuple[Any, ...]]]
NO_TIME = np.iinfo(np.int64).min
Aggs = dict[str, np.ndarray]
_FIELDS = ("dev", "bucket", "n", "s", "ss", "mn", "mx", "ft", "fv", "lt", "lv")


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

    def warm(self, rule: Rule, state: RuleState, device_ids: list[str], now_ns: int) -> None:
        """Rebuild the windows ending now from stored telemetry, before live batches arrive."""
        ref_of = state.memory.get("reference")
        ref = float(ref_of(rule.condition["key"])) if ref_of else 0.0
        warm_window(state, rule, device_ids, now_ns, ref)

    def pending(self, state: RuleState) -> bool:
        """A background window load finished: its devices' held points can be evaluated."""
        return any(load[1].done() for load in state.memory.get("loads", ()))

    def backtest_step_seconds(self, condition: dict[str, Any]) -> float | None:
        """Replay in bucket-sized steps, as batches would arrive."""
        return bucket_ns(parse_window(condition["window"])) / 1e9

    def evaluate(self, rule: Rule, points: Points, state: RuleState) -> pd.DataFrame:
        """Update the window aggregates, compute the statistic per touched device, emit changes."""
        c = rule.condition
        window = int(parse_window(c["window"]) * 1e9)
        width = bucket_ns(window / 1e9)
        mem = _memory(state, float(points.value[0]) if len(points) else 0.0)
        codes: DeviceCodes = mem["codes"]
        _fit(mem, len(codes))
        dev, ts, values = _collect(mem)
        if len(points):
            dev = np.concatenate([dev, points.device])
            ts = np.concatenate([ts, points.ts])
            values = np.concatenate([values, points.value - mem["ref"]])
        if not len(dev):
            return empty_events()
        _seed(mem, dev, ts, c["key"], window, width)
        loading = mem["loading"][dev]
        if loading.any():  # evaluated once their windows are loaded
            mem["held"].append((dev[loading], ts[loading], values[loading]))
            dev, ts, values = dev[~loading], ts[~loading], values[~loading]
            if not len(dev):
                return empty_events()
        wm = mem["wm"]
        np.maximum.at(wm, dev, ts)
        fresh = ts >= wm[dev] - window
        aggs = _concat(mem["aggs"], _aggregate(dev[fresh], ts[fresh], values[fresh], width))
        keep = aggs["bucket"] + width > wm[aggs["dev"]] - window
        aggs = {k: v[keep] for k, v in aggs.items()}
        mem["calls"] += 1
        if mem["calls"] % 10 == 0:
            aggs = _compact(aggs)
        mem["aggs"] = aggs
        touched = np.unique(dev)
        inside = np.isin(aggs["dev"], touched)
        devices, n, stat = _statistic({k: v[inside] for k, v in aggs.items()}, c["function"], mem["ref"])
        if not len(devices):
            return empty_events()
        minimum = int(c.get("min_points") or (1 if c["function"] in ("mean", "min", "max") else 2))
        with np.errstate(invalid="ignore"):
            firing = (n >= minimum) & compare(stat, c["operator"], float(c["value"]))
        was = mem["firing"][devices]
        mem["firing"][devices] = firing
        changed = np.nonzero(firing != was)[0]
        if not len(changed):
            return empty_events()
        ids = codes.decode(devices[changed])
        marks = wm[devices[changed]]
        for device_id, fire, mark in zip(ids, firing[changed], marks, strict=True):
            state.put(str(device_id), {"firing": bool(fire), "wm": int(mark)})
        kinds = np.where(firing[changed], "fire", "clear").astype(object)
        return events_frame(ids, kinds, marks, c["key"], stat[changed], float(c["value"]))


def warm_window(state: RuleState, rule: Rule, device_ids: list[str], now_ns: int, ref: float) -> None:
    """Load the window ending now of these devices (engine start): live batches then need no history."""
    c = rule.condition
    window = int(parse_window(c["window"]) * 1e9)
    mem = _memory(state, ref)
    codes: DeviceCodes = mem["codes"]
    dev = codes.encode(np.array(device_ids, dtype=object))
    _fit(mem, len(codes))
    mem["warmed"][dev] = now_ns
    at = np.full(len(dev), now_ns, dtype=np.int64)
    _seed(mem, dev, at, c["key"], window, bucket_ns(window / 1e9), warm=True)
    if not mem["loading"][dev].any():  # loaded inline (no background loader)
        _unseen_if_empty(mem, dev)


def _unseen_if_empty(mem: dict[str, Any], dev: np.ndarray) -> None:
    # Devices without stored points in the start's window are looked at again at their first live point:
    # only those older than the start need a read (replays, backfills).
    mem["seen"][dev] = mem["wm"][dev] != NO_TIME


def _memory(state: RuleState, ref: float) -> dict[str, Any]:
    mem = state.memory
    if "aggs" not in mem:
        codes: DeviceCodes = mem.setdefault("codes", DeviceCodes())
        mem.update(ref=ref, aggs=_empty(), calls=0, wm=np.zeros(0, np.int64), firing=np.zeros(0, bool))
        mem.update(seen=np.zeros(0, bool), loading=np.zeros(0, bool), warmed=np.zeros(0, np.int64))
        mem.update(loads=[], held=[])
        _fit(mem, len(codes))
        for device_id, saved in state.devices.items():
            code = codes.code(device_id)
            _fit(mem, code + 1)
            mem["firing"][code] = bool(saved.get("firing", False))
    return mem


def _fit(mem: dict[str, Any], size: int) -> None:
    mem["wm"] = grown(mem["wm"], size, NO_TIME)
    mem["firing"] = grown(mem["firing"], size, False)
    mem["seen"] = grown(mem["seen"], size, False)
    mem["loading"] = grown(mem["loading"], size, False)
    mem["warmed"] = grown(mem["warmed"], size, NO_TIME)


def _empty() -> Aggs:
    ints = ("dev", "bucket", "ft", "lt")
    return {k: np.zeros(0, dtype=np.int64 if k in ints else np.float64) for k in _FIELDS}


def _concat(a: Aggs, b: Aggs) -> Aggs:
    return {k: np.concatenate([a[k], b[k]]) for k in _FIELDS}


def _aggregate(dev: np.ndarray, ts: np.ndarray, values: np.ndarray, width: int) -> Aggs:
    if not len(dev):
        return _empty()
    bucket = ts // width * width
    order, starts = _boundaries((ts, bucket, dev), (bucket, dev))
    v, t = values[order], ts[order]
    ends = np.r_[starts[1:], len(order)] - 1
    return {
        "dev": dev[order][starts],
        "bucket": bucket[order][starts],
        "n": np.diff(np.r_[starts, len(order)]).astype(np.float64),
        "s": np.add.reduceat(v, starts),
        "ss": np.add.reduceat(v * v, starts),
        "mn": np.minimum.reduceat(v, starts),
        "mx": np.maximum.reduceat(v, starts),
        "ft": t[starts],
        "fv": v[starts],
        "lt": t[ends],
        "lv": v[ends],
    }


def _boundaries(
    sort_keys: tuple[np.ndarray, ...], group_keys: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by ``sort_keys`` (last most significant) and the starts of runs of equal ``group_keys``."""
    order = np.lexsort(sort_keys)
    n = len(order)
    brk = np.zeros(n, dtype=bool)
    if n:
        brk[0] = True
        for key in group_keys:
            k = key[order]
            brk[1:] |= k[1:] != k[:-1]
    return order, np.nonzero(brk)[0]


def _compact(aggs: Aggs) -> Aggs:
    """Merge rows of the same (device, bucket)."""
    if not len(aggs["dev"]):
        return aggs
    order, starts = _boundaries((aggs["ft"], aggs["bucket"], aggs["dev"]), (aggs["bucket"], aggs["dev"]))
    a = {k: v[order] for k, v in aggs.items()}
    merged = {
        "dev": a["dev"][starts],
        "bucket": a["bucket"][starts],
        "n": np.add.reduceat(a["n"], starts),
        "s": np.add.reduceat(a["s"], starts),
        "ss": np.add.reduceat(a["ss"], starts),
        "mn": np.minimum.reduceat(a["mn"], starts),
        "mx": np.maximum.reduceat(a["mx"], starts),
        "ft": a["ft"][starts],
        "fv": a["fv"][starts],
    }
    order, starts = _boundaries((aggs["lt"], aggs["bucket"], aggs["dev"]), (aggs["bucket"], aggs["dev"]))
    ends = np.r_[starts[1:], len(order)] - 1
    merged["lt"], merged["lv"] = aggs["lt"][order][ends], aggs["lv"][order][ends]
    return merged


def _statistic(aggs: Aggs, function: str, ref: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(devices, points in window, statistic) per device present in ``aggs``."""
    order, starts = _boundaries((aggs["lt"], aggs["dev"]), (aggs["dev"],))
    if not len(starts):
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty
    a = {k: v[order] for k, v in aggs.items()}
    ends = np.r_[starts[1:], len(order)] - 1
    devices = a["dev"][starts]
    n = np.add.reduceat(a["n"], starts)
    s = np.add.reduceat(a["s"], starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        if function == "mean":
            return devices, n, mean + ref
        if function == "min":
            return devices, n, np.minimum.reduceat(a["mn"], starts) + ref
        if function == "max":
            return devices, n, np.maximum.reduceat(a["mx"], starts) + ref
        if function == "range":
            return devices, n, np.maximum.reduceat(a["mx"], starts) - np.minimum.reduceat(a["mn"], starts)
        var = np.clip((np.add.reduceat(a["ss"], starts) - s * s / n) / (n - 1), 0, None)
        std = np.where(n > 1, np.sqrt(var), np.nan)
        last_v = a["lv"][ends]  # rows sorted by newest time inside each device
        if function == "stddev":
            return devices, n, std
        if function == "zscore":
            return devices, n, np.where(std > 0, (last_v - mean) / std, np.nan)
        # Sorted by (device, oldest first point): group i is the same device, its head the oldest point.
        by_first, first_starts = _boundaries((aggs["ft"], aggs["dev"]), (aggs["dev"],))
        first_t, first_v = aggs["ft"][by_first][first_starts], aggs["fv"][by_first][first_starts]
        seconds = (a["lt"][ends] - first_t) / 1e9
        rate = (last_v - first_v) / seconds
        return devices, n, np.where(seconds > 0, rate, np.nan)


def _seed(
    mem: dict[str, Any],
    dev: np.ndarray,
    ts: np.ndarray,
    key: str,
    window: int,
    width: int,
    warm: bool = False,
) -> None:
    """Read the stored window of devices seen for the first time (engine start, replays, new devices)."""
    new = np.unique(dev[~mem["seen"][dev]])
    if not len(new):
        return
    codes: DeviceCodes = mem["codes"]
    first = np.full(len(codes), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, dev, ts)
    if not warm:
        warmed = mem["warmed"][new]
        covered = (warmed != NO_TIME) & (first[new] >= warmed)
        mem["seen"][new[covered]] = True
        new = new[~covered]
        if not len(new):
            return
    mem["seen"][new] = True
    loader: WindowLoader | None = mem.get("window_loader")
    if loader is None:
        return
    ids = [str(i) for i in codes.decode(new)]
    args = (ids, [int(t) for t in first[new]], key, window, width, float(mem["ref"]))
    background = mem.get("background")
    if background is None:
        _add_history(mem, loader(*args))
        return
    mem["loading"][new] = True
    mem["loads"].append((new, background.submit(loader, *args), warm))


def _collect(mem: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add finished background loads; return the held points of devices no longer loading."""
    loads: list[tuple[np.ndarray, Future[Any], bool]] = mem["loads"]
    finished = [load[1].done() for load in loads]
    if any(finished):
        mem["loads"] = [load for load, done in zip(loads, finished, strict=True) if not done]
        for (new, future, warm), done in zip(loads, finished, strict=True):
            if not done:
                continue
            try:
                rows = [] if future.cancelled() else future.result()
            except Exception:  # evaluate without that history rather than hold the points for ever
                log.exception("statistical window load failed")
                rows = []
            _add_history(mem, rows)
            mem["loading"][new] = False
            if warm:
                _unseen_if_empty(mem, new)
    none = np.zeros(0, np.int64)
    if not mem["held"]:
        return none, none, np.zeros(0)
    dev, ts, values = (np.concatenate(column) for column in zip(*mem["held"], strict=True))
    waiting = mem["loading"][dev]
    mem["held"] = [(dev[waiting], ts[waiting], values[waiting])] if waiting.any() else []
    return dev[~waiting], ts[~waiting], values[~waiting]


def _add_history(mem: dict[str, Any], rows: list[tuple[Any, ...]]) -> None:
    """Add stored bucket aggregates (rows of the window loader) to the window."""
    if not rows:
        return
    codes: DeviceCodes = mem["codes"]
    columns = list(zip(*rows, strict=True))
    history: Aggs = {"dev": codes.encode(np.array(columns[0], dtype=object))}
    for name, column in zip(_FIELDS[1:], columns[1:], strict=True):
        history[name] = np.array(column, dtype=np.int64 if name in ("bucket", "ft", "lt") else np.float64)
    _fit(mem, len(codes))
    mem["aggs"] = _concat(mem["aggs"], history)
    np.maximum.at(mem["wm"], history["dev"], history["lt"])


register_rule_type(StatisticalRule)
