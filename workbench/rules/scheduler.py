"""Fires schedule rules at their cron times, once per due time across every process (a database lease)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from workbench.db.tables import rules, schedule_leases
from workbench.periodic import Periodic
from workbench.rules.schedule import due_times
from workbench.rules.types import Rule

log = logging.getLogger(__name__)
HOLDER = f"{socket.gethostname()}:{os.getpid()}"


def take_lease(engine: Engine, name: str, due_at: datetime, holder: str = HOLDER) -> bool:
    """Claim ``(name, due_at)``; True for exactly one caller across processes."""
    statement = (
        pg_insert(schedule_leases)
        .values(name=name, due_at=due_at, holder=holder)
        .on_conflict_do_nothing(index_elements=[schedule_leases.c.name, schedule_leases.c.due_at])
        .returning(schedule_leases.c.name)
    )
    with engine.begin() as conn:
        return conn.execute(statement).first() is not None


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
        self.holder = holder or f"{HOLDER}:{uuid.uuid4().hex[:6]}"
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
