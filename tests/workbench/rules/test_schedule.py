"""Schedule rules: cron in a time zone, each due time fired once across competing schedulers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.workbench.rules.conftest import Rig
from tests.workbench.rules.receivers import HttpReceiver
from workbench.db.tables import rules
from workbench.platform import Platform
from workbench.rules.schedule import due_times
from workbench.rules.scheduler import Scheduler
from workbench.rules.store import load_rules
from workbench.rules.types import Rule, rule_type


def test_cron_is_timezone_aware_across_daylight_saving() -> None:
    condition = {"schedule": "0 8 * * *", "timezone": "Europe/Madrid"}
    assert rule_type("schedule").validate(condition) == {}
    assert set(rule_type("schedule").validate({"schedule": "61 * * *", "timezone": "Mars/Base"})) == {
        "condition.schedule",
        "condition.timezone",
    }
    # Spain moves to summer time early on 29 March 2026: 08:00 local is 07:00 UTC on the 28th, 06:00 after.
    due = due_times(condition, datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 3, 31, 12, tzinfo=UTC))
    assert [d.astimezone(UTC).hour for d in due] == [7, 6, 6, 6]


def test_each_due_time_fires_once_across_schedulers(rules_platform: Platform, rig: Rig) -> None:
    rule_id = rig.rule("schedule", {"schedule": "*/5 * * * *", "timezone": "UTC"}, action={"type": "alert"})
    rule = next(r for r in load_rules(rules_platform.engine) if r.id == rule_id)
    fired: list[tuple[str, datetime]] = []
    lock = threading.Lock()

    def record(r: Rule, due: datetime) -> None:
        with lock:
            fired.append((r.id, due))

    schedulers = [Scheduler(rules_platform.engine, lambda: [rule], record, holder=f"p{i}") for i in range(4)]
    start = datetime(2031, 1, 1, 0, 1, tzinfo=UTC)
    for scheduler in schedulers:
        scheduler.tick(start)
    threads = [threading.Thread(target=s.tick, args=(start + timedelta(minutes=11),)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(d.astimezone(UTC).minute for _, d in fired) == [5, 10]  # once each, whoever won
    with rules_platform.engine.connect() as conn:
        assert conn.execute(select(rules.c.trigger_count).where(rules.c.id == rule.id)).scalar_one() == 2


def test_engine_runs_schedule_actions(rig: Rig) -> None:
    receiver = HttpReceiver()
    rule_id = rig.rule(
        "schedule",
        {"schedule": "0 6 * * *", "timezone": "Europe/Madrid"},
        action={"type": "webhook", "url": receiver.url},
    )
    engine = rig.start()
    try:
        engine.scheduler.tick(datetime(2032, 6, 1, 3, 0, tzinfo=UTC))
        engine.scheduler.tick(datetime(2032, 6, 1, 4, 30, tzinfo=UTC))  # 06:00 Madrid = 04:00 UTC
        assert engine.idle(10)
    finally:
        receiver.close()
    [body] = [receiver.json(i) for i in range(len(receiver.requests))]
    assert body["event"] == "schedule" and body["rule"]["id"] == rule_id and body["alert"] is None
    assert body["due_at"] == "2032-06-01T06:00:00+02:00"
