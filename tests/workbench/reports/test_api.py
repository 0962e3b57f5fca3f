"""``/api/v1/reports``: run, archive, download, schedule; viewers read, engineers generate."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from pypdf import PdfReader

from tests.workbench.reports.plant import Plant
from workbench.platform import EXTENSION, Platform
from workbench.reports.service import PROGRESS_TOPIC, ReportService

pytestmark = pytest.mark.slow
Headers = Callable[[str], dict[str, str]]


@pytest.fixture(scope="module")
def reports_app(app: Flask, tiny_service: ReportService) -> Iterator[tuple[Flask, ReportService]]:
    """The whole app, its reports endpoints running the tiny notebooks (a warm service shared with the
    service tests) instead of the report notebooks in reports/."""
    platform: Platform = app.extensions[EXTENSION]
    platform.services.reports = tiny_service
    yield app, tiny_service
    platform.services.reports = None


@pytest.fixture
def client(reports_app: tuple[Flask, ReportService]) -> FlaskClient:
    """A client of the reports app."""
    return reports_app[0].test_client()


def test_roles_viewers_read_engineers_generate(client: FlaskClient, headers_for: Headers) -> None:
    body = {"notebook": "tiny", "parameters": {}}
    assert client.get("/api/v1/reports").status_code == 401
    assert client.post("/api/v1/reports/pdf", json=body).status_code == 401
    for role in ("viewer", "operator"):
        response = client.post("/api/v1/reports/pdf", json=body, headers=headers_for(role))
        assert response.status_code == 403, role
        assert response.get_json()["error"]["code"] == "forbidden"
        assert client.get("/api/v1/reports", headers=headers_for(role)).status_code == 200
    schedule = {"notebook": "tiny", "format": "pdf", "cron": "0 6 * * *"}
    assert (
        client.post("/api/v1/reports/schedule", json=schedule, headers=headers_for("viewer")).status_code
        == 403
    )
    assert client.get("/api/v1/reports/scheduled", headers=headers_for("viewer")).status_code == 200


def test_pdf_on_request_then_download(client: FlaskClient, headers_for: Headers, plant: Plant) -> None:
    body = {"notebook": "tiny", "parameters": plant.parameters(), "wait": True}
    response = client.post("/api/v1/reports/pdf", json=body, headers=headers_for("engineer"))
    assert response.status_code == 201, response.get_json()
    report = response.get_json()
    assert report["status"] == "done" and report["format"] == "pdf" and len(report["data_hash"]) == 64
    assert report["download_url"] == f"/api/v1/reports/{report['id']}/download"
    # A viewer finds it in the archive and downloads it.
    listing = client.get(
        "/api/v1/reports?notebook=tiny&status=done", headers=headers_for("viewer")
    ).get_json()
    assert report["id"] in [item["id"] for item in listing["items"]] and listing["total"] >= 1
    one = client.get(f"/api/v1/reports/{report['id']}", headers=headers_for("viewer")).get_json()
    assert one["parameters"]["devices"] == plant.device_names and one["progress"] == 1.0
    download = client.get(report["download_url"], headers=headers_for("viewer"))
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    assert "tiny.pdf" in download.headers["Content-Disposition"]
    assert len(PdfReader(io.BytesIO(download.data)).pages) >= 1


def test_excel_in_the_background_with_progress(
    client: FlaskClient, reports_app: tuple[Flask, ReportService], headers_for: Headers, plant: Plant
) -> None:
    _, reports = reports_app
    events: list[dict[str, Any]] = []
    unsubscribe = reports.platform.bus.subscribe(PROGRESS_TOPIC, lambda _t, p: events.append(p))
    try:
        body = {"notebook": "tiny", "parameters": plant.parameters()}
        response = client.post("/api/v1/reports/excel", json=body, headers=headers_for("engineer"))
        assert response.status_code == 202
        report = response.get_json()
        assert report["status"] in ("queued", "running") and report["download_url"] is None
        deadline = time.monotonic() + 120
        while report["status"] not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            report = client.get(report["url"], headers=headers_for("engineer")).get_json()
        reports.wait(10)
    finally:
        unsubscribe()
    assert report["status"] == "done", report["error"]
    mine = [e["progress"] for e in events if e["id"] == report["id"] and "progress" in e]
    assert mine == sorted(mine) and mine[-1] == 1.0 and len(mine) >= 4
    download = client.get(report["download_url"], headers=headers_for("engineer"))
    workbook = load_workbook(io.BytesIO(download.data))
    assert workbook.sheetnames == ["Summary", plant.names["press"], plant.names["pump"]]


def test_bad_requests_are_named(client: FlaskClient, headers_for: Headers) -> None:
    engineer = headers_for("engineer")
    response = client.post("/api/v1/reports/zip", json={"notebook": "nope"}, headers=engineer)
    assert (
        response.status_code == 400
        and "unknown report notebook 'nope'" in response.get_json()["error"]["message"]
    )
    response = client.post("/api/v1/reports/docx", json={"notebook": "tiny"}, headers=engineer)
    assert response.status_code == 404
    response = client.post(
        "/api/v1/reports/pdf", json={"notebook": "tiny", "colour": "red"}, headers=engineer
    )
    assert response.status_code == 422 and "colour" in str(response.get_json()["error"]["details"])
    missing = client.get("/api/v1/reports/00000000-0000-0000-0000-000000000000", headers=engineer)
    assert missing.status_code == 404


def test_failed_report_is_not_downloadable(client: FlaskClient, headers_for: Headers, plant: Plant) -> None:
    body = {"notebook": "broken", "parameters": plant.parameters(), "wait": True}
    report = client.post("/api/v1/reports/pdf", json=body, headers=headers_for("admin")).get_json()
    assert report["status"] == "failed" and "cell 4" in report["error"] and report["download_url"] is None
    response = client.get(f"/api/v1/reports/{report['id']}/download", headers=headers_for("admin"))
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "report_not_ready"


def test_schedule_and_list(client: FlaskClient, headers_for: Headers, plant: Plant) -> None:
    body = {
        "name": f"Morning summary {plant.tag}",
        "notebook": "tiny",
        "format": "zip",
        "cron": "0 6 * * 1-5",
        "timezone": "Europe/Paris",
        "recipients": ["manager@example.com"],
        "parameters": {"devices": plant.device_names, "start": "today-1d", "end": "today"},
    }
    response = client.post("/api/v1/reports/schedule", json=body, headers=headers_for("engineer"))
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["next_run"].endswith("+01:00") or created["next_run"].endswith("+02:00")
    assert "T06:00:00" in created["next_run"] and created["parameters"]["timezone"] == "Europe/Paris"
    listed = client.get("/api/v1/reports/scheduled", headers=headers_for("viewer")).get_json()["items"]
    assert created["id"] in [item["id"] for item in listed]
    bad = client.post(
        "/api/v1/reports/schedule", json={**body, "cron": "every morning"}, headers=headers_for("admin")
    )
    assert bad.status_code == 400 and "cron" in bad.get_json()["error"]["message"]
    bad = client.post(
        "/api/v1/reports/schedule", json={**body, "recipients": ["nobody"]}, headers=headers_for("admin")
    )
    assert bad.status_code == 422


def test_catalog_lists_notebooks_and_formats(client: FlaskClient, headers_for: Headers) -> None:
    catalog = client.get("/api/v1/reports/catalog", headers=headers_for("viewer")).get_json()
    assert catalog["notebooks"] == ["broken", "slow", "tiny"]
    assert {"pdf", "excel", "zip", "html"} <= set(catalog["formats"])
