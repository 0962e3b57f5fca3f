"""The report scheduler: a due schedule renders once across racing schedulers and is e-mailed for real."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from tests.conftest import free_port
from tests.workbench.reports.plant import Plant
from workbench.db.engine import make_engine
from workbench.db.tables import report_schedules, reports, schedule_leases
from workbench.live.bus import EventBus
from workbench.platform import Platform
from workbench.reports.scheduler import LEASE_PREFIX, ReportScheduler, start_reports
from workbench.reports.schedules import create_schedule, last_due
from workbench.reports.service import ReportService
from workbench.settings import Settings

pytestmark = pytest.mark.slow


class Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message."""
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a free local port."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture(scope="module")
def mail_settings(settings: Settings, smtp: tuple[Inbox, int]) -> Settings:
    """The session settings with e-mail through the local SMTP server."""
    return dataclasses.replace(
        settings, smtp_host="127.0.0.1", smtp_port=smtp[1], smtp_tls="none", smtp_from="reports@example.com"
    )


def _process(settings: Settings, reports: ReportService | None, notebooks: Path) -> ReportScheduler:
    """A scheduler as another process would have it: its own engine and bus (and service unless given)."""
    assert settings.database_url
    platform = Platform(
        settings=settings, engine=make_engine(settings.database_url, pool_size=2), bus=EventBus()
    )
    return ReportScheduler(
        platform, reports or ReportService(platform, notebooks_dir=notebooks, max_parallel=1)
    )


def test_due_schedule_runs_once_across_racing_schedulers_and_is_mailed(
    mail_settings: Settings,
    tiny_notebooks: Path,
    tiny_service: ReportService,
    plant: Plant,
    smtp: tuple[Inbox, int],
) -> None:
    inbox, _ = smtp
    # The first reuses the warm tiny service; the second starts its own kernel only if it wins.
    first, second = (
        _process(mail_settings, tiny_service, tiny_notebooks),
        _process(mail_settings, None, tiny_notebooks),
    )
    schedule = create_schedule(
        first.reports,
        name=f"Hourly {plant.tag}",
        notebook="tiny",
        format_name="excel",
        cron="0 * * * *",
        timezone="Europe/Paris",
        parameters={"devices": plant.device_names, "start": "today-1d", "end": "today"},
        recipients=["plant.manager@example.com", "ops@example.com"],
    )
    # Not due before its first firing after creation.
    assert schedule["id"] not in [
        s["id"] for s, _ in first.due(schedule["created_at"] + timedelta(seconds=1))
    ]
    now = schedule["created_at"] + timedelta(hours=2)
    fired = last_due("0 * * * *", "Europe/Paris", now)
    results: dict[str, list[uuid.UUID]] = {}
    barrier = threading.Barrier(2)

    def race(name: str, scheduler: ReportScheduler) -> None:
        barrier.wait()
        results[name] = scheduler.run_pending(now)

    threads = [threading.Thread(target=race, args=(n, s)) for n, s in (("a", first), ("b", second))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        with first.platform.engine.connect() as conn:
            made = (
                conn.execute(select(reports).where(reports.c.schedule_id == schedule["id"])).mappings().all()
            )
            leases = conn.execute(
                select(schedule_leases).where(schedule_leases.c.name == f"{LEASE_PREFIX}{schedule['id']}")
            ).all()
            last_run = conn.execute(
                select(report_schedules.c.last_run).where(report_schedules.c.id == schedule["id"])
            ).scalar_one()
        assert len(made) == 1 and made[0]["status"] == "done", [m["error"] for m in made]
        # Exactly one of the two rendered it (other schedules of the session may be due too: ignore them).
        assert [i for ids in results.values() for i in ids].count(made[0]["id"]) == 1
        assert len(leases) == 1 and last_run == fired
        # The window is the previous local day relative to the firing, in the schedule's timezone.
        local_midnight = fired.replace(hour=0, minute=0)
        assert made[0]["parameters"]["end"] == local_midnight.isoformat()
        assert made[0]["parameters"]["timezone"] == "Europe/Paris"
        # Delivered once, with the workbook attached.
        mine = [(to, m) for to, m in inbox.messages if schedule["name"] in str(m["Subject"])]
        assert len(mine) == 1
        recipients, message = mine[0]
        assert sorted(recipients) == ["ops@example.com", "plant.manager@example.com"]
        assert message["From"] == "reports@example.com"
        attachments = [part for part in message.walk() if part.get_filename()]
        assert [a.get_filename() for a in attachments] == ["tiny.xlsx"]
        assert attachments[0].get_payload(decode=True)[:2] == b"PK"  # an xlsx is a zip
        # Already run for this firing: nothing more to do at the same time.
        assert first.run_pending(now) == [] and second.run_pending(now) == []
    finally:
        with first.platform.engine.begin() as conn:
            conn.execute(
                update(report_schedules).where(report_schedules.c.id == schedule["id"]).values(enabled=False)
            )
        second.reports.close()
        for scheduler in (first, second):
            scheduler.platform.engine.dispose()


def test_scheduler_thread_starts_and_stops(report_platform: Platform, tiny_notebooks: Path) -> None:
    reports = ReportService(report_platform, notebooks_dir=tiny_notebooks)
    scheduler = ReportScheduler(report_platform, reports, interval=0.05)
    passes: list[datetime] = []
    original = scheduler.run_pending

    def counted(now: datetime | None = None) -> list[uuid.UUID]:
        passes.append(datetime.now(UTC))
        return original(now)

    scheduler.run_pending = counted  # type: ignore[method-assign]
    scheduler.start()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while len(passes) < 2 and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    scheduler.stop()
    assert len(passes) >= 2
    count = len(passes)
    threading.Event().wait(0.2)
    assert len(passes) == count  # stopped


def test_start_reports_runs_the_scheduler_until_stopped(report_platform: Platform) -> None:
    stop = start_reports(report_platform, interval=3600)
    scheduler, report_platform.services.report_scheduler = report_platform.services.report_scheduler, None
    try:
        assert isinstance(scheduler, ReportScheduler)
        assert scheduler.running
        _, components = report_platform.health.report()
        assert components["report_scheduler"]["status"] == "up"
    finally:
        stop()
    assert not scheduler.running
    _, components = report_platform.health.report()
    assert components["report_scheduler"]["status"] == "down"
    report_platform.health.checks.pop("report_scheduler")
