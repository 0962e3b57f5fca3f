"""Report parameters are data: on request (REST), on schedules, and for rows written around the API."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from tests.workbench.notebooks.payloads import code_name, code_value
from tests.workbench.reports.plant import Plant
from workbench.db.tables import report_schedules, reports
from workbench.platform import EXTENSION, Platform
from workbench.reports.scheduler import ReportScheduler
from workbench.reports.schedules import create_schedule
from workbench.reports.service import ReportService

Headers = Callable[[str], dict[str, str]]
ALLOWED = "allowed: start, end, timezone, devices, area"


@pytest.fixture
def client(app: Flask, tiny_service: ReportService) -> Iterator[FlaskClient]:
    """A client of the app whose reports run the tiny notebooks."""
    platform: Platform = app.extensions[EXTENSION]
    platform.services.reports = tiny_service
    yield app.test_client()
    platform.services.reports = None


def test_report_requests_refuse_parameters_that_are_not_data(
    client: FlaskClient, headers_for: Headers, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    engineer = headers_for("engineer")
    for parameters, message in (
        ({code_name(marker): 1}, f"is not an identifier; {ALLOWED}"),
        ({"colour": "red"}, f"unknown parameter 'colour'; {ALLOWED}"),
        ({"report_dir": "/etc"}, "'report_dir' is set by the platform"),
        ({"database_url": "postgresql://evil/db"}, "'database_url' is set by the platform"),
        ({"area": ["north"]}, "parameter 'area' must be a string"),
    ):
        for fmt in ("html", "pdf", "excel", "zip"):
            body = {"notebook": "tiny", "parameters": parameters, "wait": True}
            answer = client.post(f"/api/v1/reports/{fmt}", json=body, headers=engineer)
            assert answer.status_code == 400, (fmt, answer.get_json())
            assert message in answer.get_json()["error"]["message"]
        schedule = {"notebook": "tiny", "format": "pdf", "cron": "0 6 * * *", "parameters": parameters}
        answer = client.post("/api/v1/reports/schedule", json=schedule, headers=engineer)
        assert answer.status_code == 400 and message in answer.get_json()["error"]["message"]
    assert not marker.exists()


def test_a_string_that_looks_like_code_is_rendered_as_data(
    tiny_service: ReportService, plant: Plant, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    report_id = tiny_service.request("tiny", "html", {**plant.parameters(), "area": code_value(marker)})
    row = tiny_service.run(report_id)
    assert row["status"] == "done", row["error"]
    assert row["parameters"]["area"] == code_value(marker) and not marker.exists()


def test_a_stored_report_with_a_code_name_fails_without_running(
    tiny_service: ReportService, plant: Plant, tmp_path: Path
) -> None:
    """A row written around the service (or before the check): the runner refuses it, naming why."""
    marker = tmp_path / "marker"
    report_id = tiny_service.request("tiny", "html", plant.parameters())
    with tiny_service.platform.engine.begin() as conn:
        bad = {**plant.parameters(), code_name(marker): 1}
        conn.execute(update(reports).where(reports.c.id == report_id).values(parameters=bad))
    row = tiny_service.run(report_id)
    assert row["status"] == "failed" and "is not an identifier; allowed: database_url, start" in row["error"]
    assert not marker.exists()


def test_a_stored_schedule_with_a_code_name_renders_nothing(
    tiny_service: ReportService, plant: Plant, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    schedule = create_schedule(
        tiny_service,
        name=f"bad-{uuid.uuid4().hex[:6]}",
        notebook="tiny",
        format_name="html",
        cron="* * * * *",
        parameters={k: v for k, v in plant.parameters().items() if k != "timezone"},
    )
    assert schedule["parameters"]["timezone"] == "UTC"  # filled in: the notebook declares it
    platform = tiny_service.platform
    with platform.engine.begin() as conn:
        bad = {**schedule["parameters"], code_name(marker): 1}
        conn.execute(
            update(report_schedules).where(report_schedules.c.id == schedule["id"]).values(parameters=bad)
        )
    scheduler = ReportScheduler(platform, tiny_service)
    try:
        assert scheduler.run_pending(datetime.now(UTC) + timedelta(minutes=2)) == []
    finally:
        with platform.engine.begin() as conn:
            conn.execute(
                update(report_schedules).where(report_schedules.c.id == schedule["id"]).values(enabled=False)
            )
    with platform.engine.connect() as conn:
        made = conn.execute(
            select(func.count()).select_from(reports).where(reports.c.schedule_id == schedule["id"])
        ).scalar_one()
    assert made == 0 and not marker.exists()
