"""Every report notebook in reports/ runs against real data in a real database and renders to a ZIP."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import nbformat
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from tests.workbench.reports.plant import Plant, read_table
from workbench.reports.service import NOTEBOOKS_DIR, ReportService

NOTEBOOKS = sorted(path.stem for path in NOTEBOOKS_DIR.glob("*.ipynb"))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rendered(report_service: ReportService, plant: Plant) -> dict[str, dict[str, Any]]:
    """Each notebook rendered once as a ZIP (which holds the PDF, the workbook, CSVs and the notebook)."""
    results = {}
    for name in NOTEBOOKS:
        report_id = report_service.request(name, "zip", plant.parameters())
        row = report_service.run(report_id)
        assert row["status"] == "done", row["error"]
        archive = zipfile.ZipFile(row["path"])
        results[name] = {
            "row": row,
            "archive": archive,
            "workbook": load_workbook(io.BytesIO(archive.read(f"{name}.xlsx"))),
            "pdf": PdfReader(io.BytesIO(archive.read(f"{name}.pdf"))),
        }
    return results


def test_the_three_report_notebooks_exist() -> None:
    assert {"daily_plant_summary", "device_health", "alert_summary"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_renders_every_part_with_provenance(
    name: str, rendered: dict[str, Any], plant: Plant
) -> None:
    result = rendered[name]
    row, archive = result["row"], result["archive"]
    assert row["progress"] == 1.0 and Path(row["path"]).name == f"{row['id']}.zip"
    assert len(row["notebook_hash"]) == 64 and len(row["data_hash"]) == 64
    members = set(archive.namelist())
    assert {f"{name}.pdf", f"{name}.xlsx", f"{name}.executed.ipynb", "provenance.json"} <= members
    assert any(member.startswith("csv/") for member in members)
    provenance = json.loads(archive.read("provenance.json"))
    assert provenance["data_hash"] == row["data_hash"]
    assert provenance["parameters"]["devices"] == plant.device_names
    assert provenance["parameters"]["timezone"] == "Europe/Paris"
    executed = nbformat.reads(archive.read(f"{name}.executed.ipynb").decode(), as_version=4)
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    pdf = result["pdf"]
    assert len(pdf.pages) >= 1
    text = "".join(page.extract_text() for page in pdf.pages)
    assert row["data_hash"] in text.replace("\n", "")  # the provenance footer is printed
    workbook = result["workbook"]
    assert workbook.sheetnames[0] == "Summary"
    assert workbook["Summary"]["B3"].value == str(row["id"])


def test_daily_summary_counts_every_reading(rendered: dict[str, Any], plant: Plant) -> None:
    workbook = rendered["daily_plant_summary"]["workbook"]
    assert workbook.sheetnames == ["Summary", plant.names["press"], plant.names["pump"]]
    stats = {(r["device"], r["key"]): r for r in read_table(workbook["Summary"], "Summary")}
    press, pump = plant.names["press"], plant.names["pump"]
    assert stats[(press, "pressure")]["readings"] == 1440
    assert stats[(press, "temperature")]["readings"] == 1440 - 29  # the 30-minute gap
    assert stats[(pump, "flow")]["readings"] == 720
    assert stats[(press, "pressure")]["minimum"] == pytest.approx(2.0)
    assert stats[(press, "pressure")]["maximum"] == pytest.approx(2.9)
    sheet = workbook[press]
    raw = read_table(sheet, "Raw", column=sheet.max_column - 4)
    assert len(raw) == plant.readings["press"]
    hourly = read_table(sheet, "Aggregated")
    assert sum(r["count"] for r in hourly) == plant.readings["press"]
    pdf_text = rendered["daily_plant_summary"]["pdf"].pages[0].extract_text()
    assert "Daily plant summary" in pdf_text and "Europe/Paris" in pdf_text


def test_device_health_finds_the_gap_and_bad_quality(rendered: dict[str, Any], plant: Plant) -> None:
    workbook = rendered["device_health"]["workbook"]
    rows = {(r["device"], r["key"]): r for r in read_table(workbook["Summary"], "Summary")}
    temperature = rows[(plant.names["press"], "temperature")]
    assert temperature["gaps"] == 1
    assert temperature["longest gap s"] == pytest.approx(1800)
    assert temperature["completeness %"] == pytest.approx(100 * 1411 / 1440, abs=0.1)
    assert rows[(plant.names["press"], "pressure")]["completeness %"] == pytest.approx(100)
    assert rows[(plant.names["pump"], "flow")]["good quality %"] == pytest.approx(90)
    assert rows[(plant.names["oven"], "(none)")]["completeness %"] == 0  # silent device is listed
    gaps = read_table(workbook["Summary"], "Gaps")
    assert [(g["device"], g["key"], g["duration s"]) for g in gaps] == [
        (plant.names["press"], "temperature", 1800)
    ]


def test_alert_summary_counts_response_times_and_noisy_rules(rendered: dict[str, Any], plant: Plant) -> None:
    workbook = rendered["alert_summary"]["workbook"]
    counts = {r["severity"]: r for r in read_table(workbook["Summary"], "Summary")}
    assert counts["critical"]["total"] == 5 and counts["critical"]["active"] == 1
    assert counts["warning"]["total"] == 2
    noisy = read_table(workbook["Summary"], "Noisiest rules")
    assert noisy[0]["rule"] == f"High temperature {plant.tag}" and noisy[0]["alerts"] == 5
    response = {(r["step"], r["severity"]): r for r in read_table(workbook["Summary"], "Response times")}
    assert response[("acknowledge", "critical")]["median"] == pytest.approx(5)
    assert response[("resolve", "warning")]["median"] == pytest.approx(60)
    assert workbook.sheetnames == ["Summary", plant.names["press"], plant.names["pump"]]


def test_report_by_area_selects_the_area_devices(report_service: ReportService, plant: Plant) -> None:
    parameters = {"start": "2026-03-02T00:00:00", "end": "2026-03-03T00:00:00", "area": plant.area}
    row = report_service.run(report_service.request("alert_summary", "excel", parameters))
    assert row["status"] == "done", row["error"]
    workbook = load_workbook(row["path"])
    assert workbook.sheetnames == ["Summary", plant.names["press"], plant.names["pump"]]
    assert uuid.UUID(str(row["id"]))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_renders_a_quiet_window(name: str, report_service: ReportService, plant: Plant) -> None:
    parameters = plant.parameters(start="2020-01-01T00:00:00Z", end="2020-01-02T00:00:00Z")
    row = report_service.run(report_service.request(name, "excel", parameters))
    assert row["status"] == "done", row["error"]
    assert load_workbook(row["path"]).sheetnames == ["Summary"]
