"""Finished notebook-rule runs into alerts now, through the running rule engine's own lifecycle.

A notebook run ends in a background thread, possibly long after the batch that started it (or on a cron,
with no batch at all). Rather than waiting for the rule's next batch, its events go through the engine's
alert book (dedup, cooldown, auto-resolve), become alert rows linked to the run (``notebook_run_id``) in one
transaction, and the rule's actions are queued on the engine's action worker, as for any other rule. The
alert says what the notebook said (``metadata.notebook_message``; also the message itself unless the rule's
action sets a message template).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench.platform import Platform
from workbench.rules import alerts as alert_rows
from workbench.rules.engine import AUTO_RESOLVE_COMMENT, engine_of
from workbench.rules.lifecycle import decide
from workbench.rules.types import Rule


def deliver(platform: Platform, rule: Rule, events: pd.DataFrame) -> bool:
    """Apply ``events`` of ``rule`` through the platform's running rule engine; False when none runs here."""
    engine = engine_of(platform)
    if engine is None:
        return False
    decisions = decide(rule, events.sort_values("ts", kind="stable"), engine.book)
    if not decisions:
        return True
    said = _messages(events)
    created: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    with platform.engine.begin() as conn:
        # One statement per decision, in order: a device can clear and fire again within one run, and its
        # resolve must land before the new alert's insert (the open alert would absorb it). A run makes few.
        for d in decisions:
            if d.kind == "raise":
                values = alert_rows.alert_values(d, engine.directory)
                created += alert_rows.insert_alerts(
                    conn, [_with_message(rule, values, said.get((d.device_id, d.ts)))]
                )
            else:
                resolved += alert_rows.auto_resolve(conn, [(d.rule.id, d.device_id)], AUTO_RESOLVE_COMMENT)
    for row in created:
        engine.run_actions(rule, row)
    for row in resolved:
        alert_rows.publish_update(platform, row)  # the engine forgets the pair when it hears of it...
    for d in decisions:  # ...but a pair that fired again after its resolve is open
        pair = (d.rule.id, d.device_id)
        if d.kind == "raise":
            engine.book.open.add(pair)
        else:
            engine.book.open.discard(pair)
    return True


def _messages(events: pd.DataFrame) -> dict[tuple[str, int], str]:
    """The notebook's message of each ``fire`` event by (device, time)."""
    if "message" not in events:
        return {}
    fires = events[(events["kind"] == "fire") & events["message"].notna()]
    return {
        (str(d), int(t)): str(m)
        for d, t, m in zip(fires["device_id"], fires["ts"], fires["message"], strict=True)
    }


def _with_message(rule: Rule, values: dict[str, Any], message: str | None) -> dict[str, Any]:
    if message is None:
        return values
    values["metadata"] = {**values["metadata"], "notebook_message": message}
    if not any(isinstance(action.get("message"), str) and action["message"] for action in rule.actions):
        values["message"] = f"{rule.name}: {message}"
    return values
