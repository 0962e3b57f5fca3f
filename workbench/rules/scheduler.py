"""Fires schedule rules at their cron times, once per due time across every process (a database lease)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, func, update

from workbench.db.leases import holder_name, take_lease
from workbench.db.tables import rules
from workbench.periodic import Periodic
from workbench.rules.schedule import due_times
from workbench.rules.types import Rule

log = logging.getLogger(__name__)


class Scheduler:
    """Checks schedule rules every ``tick`` seconds; due times missed while stopped are not replayed."""

    def __init__(
        self,
        engine: Engine,
        rules_of: Callable[[], list[Rule]],
        fire: Callable[[Rule, datetime], None],
        tick: float = 1.0,
        holder: str | None = None,
    ) -> None:
        self.engine = engine
        self.rules_of = rules_of
        self.fire = fire
        self.holder = holder or holder_name()
        self._checked: dict[str, datetime] = {}
        self._periodic = Periodic("rule-scheduler", tick, self.tick)
        self.last_tick: datetime | None = None

    def start(self) -> None:
        """Start the scheduler thread."""
        self._periodic.start()

    def stop(self) -> None:
        """Stop the thread."""
        self._periodic.stop(5)

    def tick(self, now: datetime | None = None) -> list[tuple[str, datetime]]:
        """Fire every due time in (last check, now] this process wins; returns what it fired."""
        now = now or datetime.now(UTC)
        fired = []
        for rule in self.rules_of():
            if rule.type != "schedule":
                continue
            since = self._checked.get(rule.id, now)
            self._checked[rule.id] = now
            for due in due_times(rule.condition, since, now):
                if take_lease(self.engine, f"rule:{rule.id}", due, self.holder):
                    self._record(rule, due)
                    self.fire(rule, due)
                    fired.append((rule.id, due))
        self.last_tick = now
        return fired

    def _record(self, rule: Rule, due: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(rules)
                .where(rules.c.id == uuid.UUID(rule.id))
                .values(trigger_count=rules.c.trigger_count + 1, last_triggered=func.now())
            )
