"""The duration gate: turn a per-point condition into fire/clear events, vectorised, with event-time state.

Semantics (also in the README, "Rule engine"):

- A condition *holds* for a device from the first point where it is true until the next point where it is
  false, in event time (the points' timestamps, not arrival time). With ``duration_seconds = d`` the rule
  *fires* at the first point where the condition has held for at least ``d`` seconds (``d = 0``: at the first
  true point); it *clears* at the first false point after that.
- Per (rule, device) the state keeps the *watermark* (newest event time seen), whether the condition held at
  that point, since when, and whether the rule had fired. It is written to ``rule_state`` at every change of
  those (not at every point), so a restarted engine continues a duration window where the last one left it.
- Points of one batch are sorted by event time before they are evaluated, so out-of-order arrival inside a
  batch changes nothing. A point at or before the watermark (late, across batches) cannot rewrite a run that
  was already decided: it is ignored for duration runs and never clears an alert, but an instantaneous rule
  (``d = 0``) still fires on it, because the excursion really happened; the condition then counts as
  holding, so the next on-time point where it is false clears the alert (auto-resolve).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.rules.codes import DeviceCodes, grown
from workbench.rules.types import Points, RuleState, empty_events, events_frame

NO_TIME = np.iinfo(np.int64).min


class GateArrays:
    """Per-device gate state as arrays indexed by device code (loaded from ``RuleState.devices`` once)."""

    def __init__(self, state: RuleState, codes: DeviceCodes) -> None:
        self.cond = np.zeros(0, dtype=bool)
        self.held = np.zeros(0, dtype=bool)
        self.since = np.zeros(0, dtype=np.int64)
        self.wm = np.zeros(0, dtype=np.int64)
        for device_id, saved in state.devices.items():
            code = codes.code(device_id)
            self.fit(code + 1)
            self.cond[code] = bool(saved.get("cond", False))
            self.held[code] = bool(saved.get("held", False))
            self.since[code] = NO_TIME if saved.get("since") is None else int(saved["since"])
            self.wm[code] = int(saved.get("wm", NO_TIME))

    def fit(self, size: int) -> None:
        """Make room for codes below ``size``."""
        if len(self.cond) >= size:
            return
        self.cond = grown(self.cond, size, False)
        self.held = grown(self.held, size, False)
        self.since = grown(self.since, size, NO_TIME)
        self.wm = grown(self.wm, size, NO_TIME)


def arrays_of(state: RuleState) -> GateArrays:
    """The state's gate arrays (built on first use from the persisted per-device state)."""
    codes = state.context.device_codes()
    found = state.memory.get("gate")
    if found is None:
        found = state.memory["gate"] = GateArrays(state, codes)
    found.fit(len(codes))
    return found


def gate(
    points: Points, cond: np.ndarray, threshold: Any, state: RuleState, duration_s: float
) -> pd.DataFrame:
    """Fire/clear events of ``points`` (device, device_id, ts, key, value) whose condition is ``cond``."""
    if len(points) == 0:
        return empty_events()
    g = arrays_of(state)
    cond = np.asarray(cond, dtype=bool)
    order: np.ndarray | None = None if points.ordered else np.lexsort((points.ts, points.device))
    dev, ts = (points.device, points.ts) if order is None else (points.device[order], points.ts[order])
    if order is not None:
        cond = cond[order]

    def at(column: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return column[rows] if order is None else column[order[rows]]

    if not cond.any() and not g.cond[dev].any():
        # The common case (nothing true before or now): no event, no state change but the watermarks.
        if order is None:
            newest_dev, newest_ts = points.tails()
        else:
            last = np.ones(len(dev), dtype=bool)
            last[:-1] = dev[1:] != dev[:-1]
            newest_dev, newest_ts = dev[last], ts[last]
        g.wm[newest_dev] = np.maximum(g.wm[newest_dev], newest_ts)
        return empty_events()
    late = ts <= g.wm[dev]
    any_late = bool(late.any())
    picks: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    if duration_s == 0 and any_late:
        rows = np.nonzero(late & cond)[0]
        if len(rows):
            _, first = np.unique(dev[rows], return_index=True)
            picks.append(rows[first])
            kinds.append(np.full(len(first), "fire", dtype=object))
            _late_fired(state, g, at(points.device_id, rows[first]), dev[rows[first]], ts[rows[first]])
    ontime = np.nonzero(~late)[0] if any_late else None
    o_dev, o_ts, o_cond = (dev, ts, cond) if ontime is None else (dev[ontime], ts[ontime], cond[ontime])
    if len(o_dev):
        fire, clear, last, since, held = _ontime(o_dev, o_ts, o_cond, g, int(duration_s * 1e9))
        last_rows = np.nonzero(last)[0] if ontime is None else ontime[last]
        _remember(
            state,
            g,
            at(points.device_id, last_rows),
            o_dev[last],
            o_cond[last],
            since[last],
            held[last],
            o_ts[last],
        )
        for mask, kind in ((fire, "fire"), (clear, "clear")):
            if mask.any():
                picks.append(np.nonzero(mask)[0] if ontime is None else ontime[mask])
                kinds.append(np.full(int(mask.sum()), kind, dtype=object))
    if not picks:
        return empty_events()
    # In row order, i.e. event time and, at equal times, arrival: a clear and a fire at the same timestamp
    # keep their order (events_frame's sort by time is stable).
    rows = np.concatenate(picks)
    order_rows = np.argsort(rows, kind="stable")
    rows, event_kinds = rows[order_rows], np.concatenate(kinds)[order_rows]
    limits = np.asarray(threshold, dtype=np.float64)
    limit = at(limits, rows) if limits.ndim else np.full(len(rows), float(limits))
    return events_frame(
        at(points.device_id, rows),
        event_kinds,
        ts[rows],
        at(points.key, rows),
        at(points.value, rows),
        limit,
    )


def _ontime(
    dev: np.ndarray, ts: np.ndarray, cond: np.ndarray, g: GateArrays, duration_ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(cond)
    first = np.ones(n, dtype=bool)
    first[1:] = dev[1:] != dev[:-1]
    head = dev[first]
    prior_cond, prior_since, prior_held = g.cond[head], g.since[head], g.held[head]
    prev = np.empty(n, dtype=bool)
    prev[1:] = cond[:-1]
    prev[first] = prior_cond
    run_start = first | (cond != prev)
    start_index = np.maximum.accumulate(np.where(run_start, np.arange(n), 0))
    since = ts[start_index]
    # A run already true before this batch started when the state says, not at our first point.
    continuing = np.zeros(n, dtype=bool)
    continuing[first] = cond[first] & prior_cond & (prior_since != NO_TIME)
    carried = np.full(n, NO_TIME, dtype=np.int64)
    carried[first] = np.where(continuing[first], prior_since, NO_TIME)
    carried = carried[start_index]
    since = np.where(carried != NO_TIME, carried, since)
    held = cond & (ts - since >= duration_ns)
    prev_held = np.empty(n, dtype=bool)
    prev_held[1:] = held[:-1]
    prev_held[run_start] = False
    prev_held[first] = np.where(continuing[first], prior_held, False)
    last = np.ones(n, dtype=bool)
    last[:-1] = dev[1:] != dev[:-1]
    return held & ~prev_held, ~cond & prev, last, np.where(cond, since, NO_TIME), held


def _late_fired(state: RuleState, g: GateArrays, ids: np.ndarray, dev: np.ndarray, ts: np.ndarray) -> None:
    """A late point fired an instantaneous rule: the condition holds until an on-time false point clears."""
    fresh = ~g.cond[dev]
    g.cond[dev[fresh]], g.held[dev[fresh]], g.since[dev[fresh]] = True, True, ts[fresh]
    for i in np.nonzero(fresh)[0]:
        state.put(str(ids[i]), {"cond": True, "since": int(ts[i]), "held": True, "wm": int(g.wm[dev[i]])})


def _remember(
    state: RuleState,
    g: GateArrays,
    ids: np.ndarray,
    dev: np.ndarray,
    cond: np.ndarray,
    since: np.ndarray,
    held: np.ndarray,
    wm: np.ndarray,
) -> None:
    """Store each device's newest gate state; mark changes of cond/since/held for ``rule_state``."""
    changed = (g.cond[dev] != cond) | (g.since[dev] != since) | (g.held[dev] != held)
    g.cond[dev], g.since[dev], g.held[dev] = cond, since, held
    g.wm[dev] = np.maximum(g.wm[dev], wm)
    for i in np.nonzero(changed)[0]:
        state.put(
            str(ids[i]),
            {
                "cond": bool(cond[i]),
                "since": None if since[i] == NO_TIME else int(since[i]),
                "held": bool(held[i]),
                "wm": int(g.wm[dev[i]]),
            },
        )
