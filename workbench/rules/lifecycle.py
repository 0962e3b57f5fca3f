"""From events to alert decisions: one open alert per rule and device, cooldown, auto-resolve.

The same code decides live (engine, against the open alerts it knows) and in backtests (against an empty
book), so a backtest returns exactly what the engine would have raised. Cooldown is in event time: a rule
does not raise again for the same device within ``cooldown_seconds`` of its previous alert's trigger time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workbench.rules.types import Rule


@dataclass
class Decision:
    """Raise an alert, or resolve the open one, for a rule and device."""

    kind: str  # "raise" | "resolve"
    rule: Rule
    device_id: str
    ts: int
    key: str | None = None
    value: float | None = None
    threshold: float | None = None
    notebook_run_id: str | None = None  # the executed notebook behind the event (notebook rules)


@dataclass
class AlertBook:
    """What the lifecycle must know: open (rule, device) pairs and the last trigger time of each."""

    open: set[tuple[str, str]] = field(default_factory=set)
    last: dict[tuple[str, str], int] = field(default_factory=dict)

    def forget(self, rule_id: str, device_id: str) -> None:
        """The pair's alert was resolved elsewhere (API, another process)."""
        self.open.discard((rule_id, device_id))


def decide(rule: Rule, events: pd.DataFrame, book: AlertBook) -> list[Decision]:
    """Walk events in event time (a few per batch: only transitions) and update ``book``."""
    decisions: list[Decision] = []
    if events.empty:
        return decisions
    cooldown = int(rule.cooldown_seconds * 1e9)
    columns: list[Any] = [
        events[c].to_numpy() for c in ("device_id", "kind", "ts", "key", "value", "threshold")
    ]
    # Optional column: rule types whose events come from a notebook run name it, so the alert links to it.
    runs = events["notebook_run_id"].to_numpy() if "notebook_run_id" in events else [None] * len(events)
    for device, kind, ts, key, value, threshold, run in zip(*columns, runs, strict=True):
        pair = (rule.id, str(device))
        if kind == "fire":
            if pair in book.open:
                continue
            last = book.last.get(pair)
            if last is not None and abs(int(ts) - last) < cooldown:
                continue
            book.open.add(pair)
            book.last[pair] = int(ts)
            decisions.append(
                Decision("raise", rule, str(device), int(ts), key, _num(value), _num(threshold), _run(run))
            )
        elif kind == "clear" and rule.auto_resolve and pair in book.open:
            book.open.discard(pair)
            decisions.append(
                Decision("resolve", rule, str(device), int(ts), key, _num(value), _num(threshold))
            )
    return decisions


def _run(value: Any) -> str | None:
    return str(value) if isinstance(value, str | uuid.UUID) and value else None


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number
