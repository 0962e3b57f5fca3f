"""Backtesting: run a rule over stored telemetry and return the alerts it would have raised (none are raised).

History is read from PostgreSQL and replayed through the rule type's own ``evaluate`` (in one step for
threshold and comparison rules, which are exact per point; in window-bucket steps for statistical rules, as
batches would have arrived), then through the same lifecycle as live (dedup, cooldown, auto-resolve).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from workbench.platform import Platform
from workbench.rules.alerts import alert_values, as_time
from workbench.rules.lifecycle import AlertBook, Decision, decide
from workbench.rules.schedule import due_times
from workbench.rules.store import DeviceDirectory, telemetry_frame, window_aggregates
from workbench.rules.types import EvalContext, Points, Rule, RuleState, rule_type

if TYPE_CHECKING:
    from workbench.platform import Platform

MAX_POINTS = 2_000_000
MAX_STEPS = 2_000


class InvalidRule(ValueError):
    """The stored rule's condition does not validate (written before a check existed, or around the API)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid rule: " + "; ".join(f"{k}: {v}" for k, v in sorted(errors.items())))
        self.errors = errors


def backtest(
    engine: Engine, rule: Rule, start: datetime, end: datetime, platform: Platform | None = None
) -> dict[str, Any]:
    """Would-be alerts of ``rule`` over [start, end): trigger time, value, threshold, resolve time.
    ``platform`` lends its services to rule types that need them (notebook rules run on its runner).

    The condition is validated first, as on create (:class:`InvalidRule`): a backtest runs nothing a
    create would refuse, such as notebook parameters that are not data."""
    kind = rule_type(rule.type)
    errors = kind.validate(rule.condition)
    if errors:
        raise InvalidRule(errors)
    start_ns, end_ns = int(pd.Timestamp(start).value), int(pd.Timestamp(end).value)
    if rule.type == "schedule":
        runs = [d.isoformat() for d in due_times(rule.condition, start, end)]
        return {"points": 0, "truncated": False, "alerts": [], "runs": runs}
    directory = DeviceDirectory(engine)
    directory.refresh()
    context = EvalContext(platform=platform)
    custom = kind.backtest(rule, engine, start_ns, end_ns, context)
    count = 0
    book = AlertBook()
    decisions: list[Decision] = []
    if custom is not None:
        decisions = decide(rule, custom.sort_values("ts", kind="stable"), book)
    else:
        devices = kind.devices(rule) or directory.matching(rule.target, rule.device_id)
        frame = telemetry_frame(engine, kind.keys(rule.condition), devices, start_ns, end_ns, MAX_POINTS + 1)
        count = min(len(frame), MAX_POINTS)
        frame = frame.iloc[:MAX_POINTS]
        state = RuleState(context=context)
        codes = state.context.device_codes()
        points = Points(
            codes.encode(frame["device_id"].astype(str)),
            frame["device_id"].astype(str).to_numpy(dtype=object),
            frame["key"].to_numpy(dtype=object),
            frame["ts"].to_numpy(dtype=np.int64),
            frame["value"].to_numpy(dtype=np.float64),
        )
        state.context.window_loader = partial(window_aggregates, engine)
        for chunk in _steps(points, kind.backtest_step_seconds(rule.condition), start_ns, end_ns):
            decisions.extend(decide(rule, kind.evaluate(rule, chunk, state), book))
    return {
        "points": count,
        "truncated": count >= MAX_POINTS,
        "alerts": _would_be(decisions, directory),
        "runs": [],
    }


def run_backtest(platform: Platform, rule: Rule, start: datetime, end: datetime) -> dict[str, Any]:
    """:func:`backtest` on the platform's read engine: history comes from the streaming replica when one is
    configured (the REST API and the UI both run backtests through here)."""
    return backtest(platform.read_engine(), rule, start, end, platform)


def _steps(points: Points, step_s: float | None, start_ns: int, end_ns: int) -> list[Points]:
    if not len(points):
        return []
    if step_s is None:
        return [points]
    step = max(int(step_s * 1e9), (end_ns - start_ns) // MAX_STEPS + 1)
    index = (points.ts - start_ns) // step
    order = np.argsort(index, kind="stable")
    cuts = np.flatnonzero(np.diff(index[order])) + 1
    return [points.take(rows) for rows in np.split(order, cuts)]


def _would_be(decisions: list[Decision], directory: DeviceDirectory) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    open_by_device: dict[str, dict[str, Any]] = {}
    for decision in decisions:
        if decision.kind == "raise":
            values = alert_values(decision, directory)
            alert = {
                "device_id": decision.device_id,
                "severity": values["severity"],
                "message": values["message"],
                "key": decision.key,
                "value": decision.value,
                "threshold": decision.threshold,
                "triggered_at": values["triggered_at"],
                "resolved_at": None,
                "notebook_run_id": decision.notebook_run_id,
            }
            made.append(alert)
            open_by_device[decision.device_id] = alert
        elif decision.device_id in open_by_device:
            open_by_device.pop(decision.device_id)["resolved_at"] = as_time(decision.ts)
    return made
