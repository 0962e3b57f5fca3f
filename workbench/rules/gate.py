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
  (``d = 0``) still fires on it, because the excursion really happened.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.rules.types import RuleState, empty_events

NO_TIME = np.iinfo(np.int64).min


def gate(points: pd.DataFrame, state: RuleState, duration_s: float) -> pd.DataFrame:
    """Events for ``points`` (device_id, ts, cond, key, value, threshold), updating ``state`` per device."""
    if points.empty:
        return empty_events()
    points = points.sort_values(["device_id", "ts"], kind="stable")
    devices = points["device_id"].to_numpy()
    known = state.devices
    watermark = np.fromiter(
        (known.get(d, {}).get("wm", NO_TIME) for d in devices), dtype=np.int64, count=len(devices)
    )
    ts = points["ts"].to_numpy(dtype=np.int64)
    late = ts <= watermark
    frames = []
    if late.any() and duration_s == 0:
        late_rows = points[late & points["cond"].to_numpy(dtype=bool)]
        if not late_rows.empty:
            frames.append(late_rows.drop_duplicates("device_id").assign(kind="fire"))
    ontime = points[~late]
    if not ontime.empty:
        frames.append(_ontime(ontime, state, int(duration_s * 1e9)))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty_events()
    events = pd.concat(frames, ignore_index=True)
    return events.loc[:, ["device_id", "kind", "ts", "key", "value", "threshold"]].sort_values(
        "ts", kind="stable"
    )


def _ontime(points: pd.DataFrame, state: RuleState, duration_ns: int) -> pd.DataFrame:
    devices = points["device_id"].to_numpy()
    ts = points["ts"].to_numpy(dtype=np.int64)
    cond = points["cond"].to_numpy(dtype=bool)
    n = len(cond)
    first = np.ones(n, dtype=bool)
    first[1:] = devices[1:] != devices[:-1]
    prior = [state.devices.get(d, {}) for d in devices[first]]
    prior_cond = np.array([bool(p.get("cond", False)) for p in prior], dtype=bool)
    prior_since = np.array(
        [p.get("since") if p.get("since") is not None else NO_TIME for p in prior], np.int64
    )
    prior_held = np.array([bool(p.get("held", False)) for p in prior], dtype=bool)

    prev = np.empty(n, dtype=bool)
    prev[1:] = cond[:-1]
    prev[first] = prior_cond
    run_start = first | (cond != prev)
    start_index = np.maximum.accumulate(np.where(run_start, np.arange(n), 0))
    since = ts[start_index]
    # A run that was already true before this batch started when the state says, not at our first point.
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
    fire = held & ~prev_held
    clear = ~cond & prev

    last = np.ones(n, dtype=bool)
    last[:-1] = devices[1:] != devices[:-1]
    for device, c, s, h, w in zip(devices[last], cond[last], since[last], held[last], ts[last], strict=True):
        old: dict[str, Any] = state.devices.get(device, {})
        new = {"cond": bool(c), "since": int(s) if c else None, "held": bool(h), "wm": int(w)}
        changed = (old.get("cond"), old.get("since"), old.get("held")) != (
            new["cond"],
            new["since"],
            new["held"],
        )
        state.put(device, new, persist=changed)
    kinds = np.where(fire, "fire", np.where(clear, "clear", ""))
    chosen = kinds != ""
    return points[chosen].assign(kind=kinds[chosen])
