"""Runs due report schedules exactly once across processes, archives the reports and e-mails them.

Each due firing is claimed by inserting ``(report:<schedule id>, due_at)`` into ``schedule_leases`` with
``ON CONFLICT DO NOTHING``: whichever process inserts the row renders; the others skip. Missed firings
(the platform was down) collapse into one run for the latest due time.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from workbench.db.leases import claim, holder_name
from workbench.db.tables import report_schedules, reports
from workbench.mail import send
from workbench.notebooks.parameters import supplied
from workbench.periodic import Periodic
from workbench.platform import Platform
from workbench.reports.mail import report_message
from workbench.reports.schedules import last_due, list_schedules
from workbench.reports.service import ReportService, service

log = logging.getLogger(__name__)

LEASE_PREFIX = "report:"


class ReportScheduler:
    """``run_pending(now)`` renders schedules due at ``now``; ``start()``/``stop()`` run it in a thread."""

    def __init__(
        self,
        platform: Platform,
        reports: ReportService | None = None,
        interval: float = 30.0,
        holder: str | None = None,
    ) -> None:
        self.platform = platform
        self.reports = reports or service(platform)
        self.interval = interval
        self.holder = holder or holder_name()
        self._periodic = Periodic("report-scheduler", interval, self._pass, run_first=True)
        self.last_pass: datetime | None = None

    def due(self, now: datetime) -> list[tuple[dict[str, Any], datetime]]:
        """Enabled schedules whose latest firing at or before ``now`` has not run yet."""
        found = []
        for schedule in list_schedules(self.reports, enabled_only=True):
            fired = last_due(schedule["cron"], schedule["timezone"], now)
            since = schedule["last_run"] or schedule["created_at"]
            if fired > since:
                found.append((schedule, fired))
        return found

    def run_pending(self, now: datetime | None = None) -> list[uuid.UUID]:
        """Render, archive and e-mail every due schedule this process wins; returns the report ids."""
        now = now or datetime.now(UTC)
        rendered = []
        for schedule, fired in self.due(now):
            if not self._claim(schedule["id"], fired):
                continue
            try:
                rendered.append(self._run(schedule, fired))
            except Exception:
                log.exception("scheduled report %s (%s) failed", schedule["name"], schedule["id"])
        return rendered

    def _claim(self, schedule_id: uuid.UUID, fired: datetime) -> bool:
        with self.platform.engine.begin() as conn:
            won = claim(conn, f"{LEASE_PREFIX}{schedule_id}", fired, self.holder)
            if won:
                conn.execute(
                    update(report_schedules)
                    .where(report_schedules.c.id == schedule_id)
                    .values(last_run=fired)
                )
        return won

    def _run(self, schedule: dict[str, Any], fired: datetime) -> uuid.UUID:
        # The schedule's timezone is the notebook's too, when it declares one and the schedule sets none.
        path = self.reports.notebook_path(schedule["notebook"])
        filled = supplied(path, {"timezone": schedule["timezone"]})
        report_id = self.reports.request(
            schedule["notebook"],
            schedule["format"],
            {**filled, **schedule["parameters"]},
            requested_by=schedule["created_by"],
            schedule_id=schedule["id"],
        )
        row = self.reports.run(report_id, reference=fired)
        recipients = list(schedule["recipients"] or [])
        if row["status"] == "done" and recipients:
            try:
                send(
                    self.platform.settings,
                    report_message(self.platform.settings, row, recipients, schedule["name"]),
                )
            except Exception as error:
                log.warning("report %s: e-mail to %s failed: %s", report_id, recipients, error)
                with self.platform.engine.begin() as conn:
                    conn.execute(
                        update(reports)
                        .where(reports.c.id == report_id)
                        .values(error=f"e-mail delivery failed: {error}")
                    )
        return report_id

    def start(self) -> None:
        """Check for due schedules every ``interval`` seconds in a daemon thread."""
        if not self._periodic.alive:
            self._periodic.start()

    def stop(self, timeout: float = 10) -> None:
        """Stop the thread (a render in progress finishes first, up to ``timeout``)."""
        self._periodic.stop(timeout)

    @property
    def running(self) -> bool:
        """Whether the scheduler thread is running."""
        return self._periodic.alive

    def health(self) -> dict[str, Any]:
        """The ``/healthz`` component: raises (down) when the thread is not running."""
        if not self._periodic.alive:
            raise RuntimeError("report scheduler is not running")
        last = self.last_pass.isoformat() if self.last_pass else None
        return {"last_pass": last, "interval_s": self.interval}

    def _pass(self) -> None:
        self.run_pending()
        self.last_pass = datetime.now(UTC)


def start_reports(platform: Platform, interval: float = 30.0) -> Callable[[], None]:
    """Start the report scheduler of a running platform; returns the function that stops it (and the
    report kernels). ``workbench up`` calls this once per process; leases keep several processes safe."""
    scheduler = ReportScheduler(platform, interval=interval)
    platform.services.report_scheduler = scheduler
    platform.health.register("report_scheduler", scheduler.health)
    scheduler.start()

    def stop() -> None:
        scheduler.stop()
        scheduler.reports.close()

    return stop
