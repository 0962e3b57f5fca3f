"""Report schedules: validated creation and listing (the ``report_schedules`` table)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import insert, select

from workbench.db.tables import report_schedules
from workbench.notebooks.parameters import supplied
from workbench.reports import formats, params
from workbench.reports.service import ReportRequestError, ReportService


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time after ``after`` the cron expression fires, in ``timezone`` (DST-aware)."""
    found: datetime = croniter(cron, after.astimezone(ZoneInfo(timezone))).get_next(datetime)
    return found


def last_due(cron: str, timezone: str, now: datetime) -> datetime:
    """The latest time at or before ``now`` the cron expression fired, in ``timezone``."""
    # A second past ``now`` so a firing exactly at ``now`` counts as due (get_prev is strict).
    local = now.astimezone(ZoneInfo(timezone)) + timedelta(seconds=1)
    found: datetime = croniter(cron, local).get_prev(datetime)
    return found


def create_schedule(
    service: ReportService,
    *,
    name: str,
    notebook: str,
    format_name: str,
    cron: str,
    timezone: str = "UTC",
    parameters: dict[str, Any] | None = None,
    recipients: list[str] | None = None,
    created_by: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Validate and store a schedule; returns its row. :class:`ReportRequestError` names what is wrong."""
    path = service.notebook_path(notebook)
    if format_name not in formats.names():
        raise ReportRequestError(f"unknown format {format_name!r}; known: {', '.join(formats.names())}")
    if not croniter.is_valid(cron):
        raise ReportRequestError(f"cron {cron!r} is not a valid cron expression")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportRequestError(f"timezone {timezone!r} is not an IANA timezone") from None
    recipients = list(recipients or [])
    if not all(isinstance(r, str) and "@" in r for r in recipients):
        raise ReportRequestError("recipients must be e-mail addresses")
    try:
        checked = params.check({**supplied(path, {"timezone": timezone}), **dict(parameters or {})}, path)
    except params.ParameterError as error:
        raise ReportRequestError(str(error)) from None
    with service.platform.engine.begin() as conn:
        row = (
            conn.execute(
                insert(report_schedules)
                .values(
                    name=name,
                    notebook=path.stem,
                    format=format_name,
                    cron=cron,
                    timezone=timezone,
                    parameters=checked,
                    recipients=recipients,
                    created_by=created_by,
                )
                .returning(*report_schedules.c)
            )
            .mappings()
            .one()
        )
    return dict(row)


def with_next_run(row: dict[str, Any]) -> dict[str, Any]:
    """A schedule row with ``next_run``: its first firing after its last run (or its creation)."""
    after = row["last_run"] or row["created_at"]
    return {**row, "next_run": next_run(row["cron"], row["timezone"], after)}


def list_schedules(service: ReportService, enabled_only: bool = False) -> list[dict[str, Any]]:
    """Every schedule, oldest first."""
    query = select(report_schedules).order_by(report_schedules.c.created_at, report_schedules.c.id)
    if enabled_only:
        query = query.where(report_schedules.c.enabled.is_(True))
    with service.platform.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]
