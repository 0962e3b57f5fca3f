"""Schedule rules: run the rule's actions at cron times in a time zone (design §5.1, type 3).

``{"schedule": "0 8 * * *", "timezone": "Europe/Madrid"}``. Due times are computed in the rule's zone (so
"08:00" stays 08:00 across daylight-saving changes) and stored in UTC. The scheduler
(``workbench.rules.scheduler``) fires each due time once, even with several processes, by inserting
``(rule, due time)`` into ``schedule_leases``: only the process whose insert lands runs the actions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from croniter import croniter

from workbench.rules.conditions import Errors
from workbench.rules.types import Points, Rule, RuleState, RuleType, empty_events, register_rule_type

FIELDS = {"schedule", "timezone", "parameters"}


class ScheduleRule(RuleType):
    """Cron-driven rule: no telemetry, its actions run at each due time."""

    name = "schedule"
    streaming = False

    def validate(self, condition: dict[str, Any]) -> Errors:
        """Errors naming the field."""
        errors: Errors = {}
        cron = condition.get("schedule")
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            errors["condition.schedule"] = "required: a cron expression such as '0 8 * * *'"
        zone = condition.get("timezone", "UTC")
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            errors["condition.timezone"] = "must be an IANA time zone such as Europe/Madrid"
        if "parameters" in condition and not isinstance(condition["parameters"], dict):
            errors["condition.parameters"] = "must be an object"
        for extra in sorted(set(condition) - FIELDS):
            errors[f"condition.{extra}"] = "unknown field"
        return errors

    def keys(self, condition: dict[str, Any]) -> set[str]:
        """A schedule reads no telemetry."""
        return set()

    def evaluate(self, rule: Rule, points: Points, state: RuleState) -> pd.DataFrame:
        """Schedules do not react to telemetry."""
        return empty_events()


def due_times(condition: dict[str, Any], after: datetime, until: datetime) -> list[datetime]:
    """Due times in (after, until], timezone-aware, in the rule's zone."""
    zone = ZoneInfo(str(condition.get("timezone", "UTC")))
    it = croniter(condition["schedule"], after.astimezone(zone))
    due: list[datetime] = []
    while len(due) < 1000:
        moment: datetime = it.get_next(datetime)
        if moment > until:
            break
        due.append(moment)
    return due


register_rule_type(ScheduleRule)
