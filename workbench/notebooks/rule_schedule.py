"""Notebook rules on a cron: at each due time of a rule's ``schedule``, run it for each of its devices.

Runs where the rule engine runs (the rules and devices are the engine's; the events go through its
lifecycle), and each due time once across processes: the process whose ``schedule_leases`` insert lands
runs it (:func:`workbench.db.leases.take_lease`). Due times missed while stopped are not replayed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select

from workbench.db.leases import take_lease
from workbench.db.tables import latest_values
from workbench.periodic import Periodic
from workbench.platform import Platform
from workbench.rules.engine import engine_of
from workbench.rules.schedule import due_times
from workbench.rules.types import Rule, rule_type

log = logging.getLogger(__name__)


class NotebookScheduler:
    """Checks the running engine's notebook rules every ``tick`` seconds and starts their due runs."""

    def __init__(self, platform: Platform, tick: float = 1.0, holder: str | None = None) -> None:
        self.platform = platform
        self.holder = holder or f"notebooks:{uuid.uuid4().hex[:8]}"
        self._checked: dict[str, datetime] = {}
        self._periodic = Periodic("notebook-rule-scheduler", tick, self.tick)

    def start(self) -> NotebookScheduler:
        """Start the scheduler thread (idle while no rule engine runs in this process)."""
        self._periodic.start()
        return self

    def stop(self) -> None:
        """Stop the thread (runs already started finish on their own)."""
        self._periodic.stop(5)

    def tick(self, now: datetime | None = None) -> list[tuple[str, datetime, int]]:
        """Start the runs due in (last check, now]; returns (rule id, due time, runs started) per due time."""
        engine = engine_of(self.platform)
        if engine is None:
            return []
        now = now or datetime.now(UTC)
        started = []
        kind: Any = rule_type("notebook")
        for rule in engine.rules():
            if rule.type != "notebook" or not rule.condition.get("schedule"):
                continue
            since = self._checked.get(rule.id, now)
            self._checked[rule.id] = now
            for due in due_times(rule.condition, since, now):
                if not take_lease(self.platform.engine, f"notebook-rule:{rule.id}", due, self.holder):
                    continue
                devices = self.devices(rule, engine.directory)
                count = kind.run_due(self.platform, rule, devices, pd.Timestamp(due))
                started.append((rule.id, due, count))
        return started

    def devices(self, rule: Rule, directory: Any) -> list[str]:
        """The rule's target devices; for a rule on every device, those that ever sent one of its keys."""
        chosen = directory.matching(rule.target, rule.device_id)
        if chosen is not None:
            return sorted(chosen)
        keys = sorted(rule_type("notebook").keys(rule.condition))
        with self.platform.engine.connect() as conn:
            rows = conn.execute(
                select(latest_values.c.device_id).where(latest_values.c.key.in_(keys)).distinct()
            )
            return sorted(str(row[0]) for row in rows)
