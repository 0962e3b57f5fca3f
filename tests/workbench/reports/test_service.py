"""The report service: runs notebooks, archives atomically, reports progress, names a failing cell."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import nbformat
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from tests.workbench.reports.plant import Plant, read_table
from workbench.live.bus import EventBus
from workbench.platform import Platform
from workbench.reports import formats
from workbench.reports.formats import ExecutedReport, ReportFormat
from workbench.reports.kit import ReportKit
from workbench.reports.service import PROGRESS_TOPIC, ReportRequestError, ReportService
from workbench.settings import Settings

pytestmark = pytest.mark.slow


def _leftovers(service: ReportService, report_id: Any) -> list[str]:
    return sorted(p.name for p in service.archive_dir.iterdir() if str(report_id) in p.name)


@pytest.fixture(scope="module")
def zipped(tiny_service: ReportService, plant: Plant) -> dict[str, Any]:
    """The tiny notebook rendered once as a ZIP, with the progress events it published."""
    events: list[dict[str, Any]] = []
    unsubscribe = tiny_service.platform.bus.subscribe(PROGRESS_TOPIC, lambda _t, p: events.append(p))
    try:
        report_id = tiny_service.request("tiny", "zip", plant.parameters())
        queued = tiny_service.get(report_id)
        row = tiny_service.run(report_id)
    finally:
        unsubscribe()
    return {"queued": queued, "row": row, "events": [e for e in events if e["id"] == str(report_id)]}


def test_report_runs_archives_and_reports_progress(
    tiny_service: ReportService, zipped: dict[str, Any]
) -> None:
    row, report_id = zipped["row"], zipped["row"]["id"]
    assert zipped["queued"]["status"] == "queued"
    assert row["status"] == "done" and row["error"] is None and row["progress"] == 1.0
    assert row["path"] == str(tiny_service.archive_dir / f"{report_id}.zip")
    assert _leftovers(tiny_service, report_id) == [f"{report_id}.ipynb", f"{report_id}.zip"]
    assert not list(tiny_service.archive_dir.glob(".work-*"))
    progress = [e["progress"] for e in zipped["events"] if "progress" in e]
    assert progress == sorted(progress) and len(progress) >= 4 and progress[-1] == 1.0
    assert zipped["events"][0]["status"] == "running" and zipped["events"][-1]["status"] == "done"
    # The window was resolved and stored with the report.
    assert row["parameters"]["start"] == "2026-03-02T00:00:00+00:00"
    # The executed notebook is kept and carries no database credentials.
    evidence = (tiny_service.archive_dir / f"{report_id}.ipynb").read_text()
    assert str(tiny_service.platform.settings.database_url) not in evidence


def test_zip_holds_pdf_excel_csv_and_notebook(zipped: dict[str, Any], plant: Plant) -> None:
    row = zipped["row"]
    with zipfile.ZipFile(row["path"]) as archive:
        names = set(archive.namelist())
        assert {"tiny.pdf", "tiny.xlsx", "tiny.executed.ipynb", "provenance.json", "csv/Summary.csv"} <= names
        assert len(PdfReader(io.BytesIO(archive.read("tiny.pdf"))).pages) >= 1
        assert f"{plant.names['pump']},flow,720" in archive.read("csv/Summary.csv").decode()
        workbook = load_workbook(io.BytesIO(archive.read("tiny.xlsx")))
    assert workbook.sheetnames == ["Summary", plant.names["press"], plant.names["pump"]]
    counts = {(r["device"], r["key"]): r["readings"] for r in read_table(workbook["Summary"], "Summary")}
    assert counts[(plant.names["pump"], "flow")] == 720
    summary = {r[0]: r[1] for r in workbook["Summary"].iter_rows(min_row=3, max_col=2, values_only=True)}
    assert summary["data_hash"] == row["data_hash"] and summary["notebook_hash"] == row["notebook_hash"]


def test_data_hash_is_the_hash_of_what_the_notebook_read(
    tiny_service: ReportService, zipped: dict[str, Any]
) -> None:
    row, url = zipped["row"], str(tiny_service.platform.settings.database_url)
    parameters = row["parameters"]
    kit = ReportKit(
        url, parameters["start"], parameters["end"], parameters["timezone"], parameters["devices"]
    )
    kit.device_list()
    kit.telemetry()
    assert kit.data_hash == row["data_hash"]  # the same data read again gives the same hash
    narrower = ReportKit(url, parameters["start"], "2026-03-02T12:00:00Z", "UTC", parameters["devices"])
    narrower.device_list()
    narrower.telemetry()
    assert narrower.data_hash != row["data_hash"]


class ProvenanceFormat(ReportFormat):
    """A third-party format: just the provenance, as JSON."""

    name: ClassVar[str] = "provenance"
    extension: ClassVar[str] = "json"
    media_type: ClassVar[str] = "application/json"

    def render(self, report: ExecutedReport, target: Path, options: dict[str, Any]) -> None:
        """Write the provenance."""
        target.write_text(report.provenance_json())


def test_html_hides_code_and_plugins_render(tiny_service: ReportService, zipped: dict[str, Any]) -> None:
    row = zipped["row"]
    evidence = tiny_service.archive_dir / f"{row['id']}.ipynb"
    executed = ExecutedReport(
        report_id=str(row["id"]),
        notebook_name="tiny",
        notebook=nbformat.read(evidence, as_version=4),
        notebook_path=evidence,
        parameters=row["parameters"],
        notebook_hash=row["notebook_hash"],
        data_hash=row["data_hash"],
        title="Tiny report",
    )
    formats.register(ProvenanceFormat)  # a third-party format, through the same door as the built-ins
    for name in ("html", "provenance"):
        target = tiny_service.archive_dir / f"check-{row['id']}.{formats.get(name).extension}"
        formats.get(name).render(executed, target, {})
        text = target.read_text()
        target.unlink()
        assert row["data_hash"] in text and row["notebook_hash"] in text
        if name == "html":
            assert "Tiny report" in text and "<table" in text
            assert "kit = ReportKit" not in text  # code is hidden


def test_formats_registry_names_builtins_and_schemas() -> None:
    assert {"html", "pdf", "excel", "zip"} <= set(formats.names())
    assert formats.get("zip").configuration_schema()["properties"]["include_pdf"]["type"] == "boolean"
    with pytest.raises(KeyError, match="unknown report format 'docx'"):
        formats.get("docx")


def test_broken_notebook_names_the_cell_and_leaves_no_report(
    tiny_service: ReportService, plant: Plant
) -> None:
    report_id = tiny_service.request("broken", "pdf", plant.parameters())
    row = tiny_service.run(report_id)
    assert row["status"] == "failed" and row["path"] is None
    assert "cell 4" in row["error"] and "ZeroDivisionError" in row["error"]
    assert "ratio = len(data) / 0" in row["error"] and "broken.ipynb" in row["error"]
    # Only the executed notebook is kept (evidence with the traceback); no PDF, no work folder.
    assert _leftovers(tiny_service, report_id) == [f"{report_id}.ipynb"]
    assert not list(tiny_service.archive_dir.glob(".work-*"))


class HalfWriter(ReportFormat):
    """A format that writes part of its file and then fails."""

    name: ClassVar[str] = "halfwriter"
    extension: ClassVar[str] = "bin"
    media_type: ClassVar[str] = "application/octet-stream"

    def render(self, report: ExecutedReport, target: Path, options: dict[str, Any]) -> None:
        """Write half, then fail."""
        target.write_bytes(b"half")
        raise OSError("disk full")


def test_failing_format_leaves_no_half_written_file(tiny_service: ReportService, plant: Plant) -> None:
    formats.register(HalfWriter)
    report_id = tiny_service.request("tiny", "halfwriter", plant.parameters())
    row = tiny_service.run(report_id)
    assert row["status"] == "failed" and row["error"] == "OSError: disk full" and row["path"] is None
    assert not (tiny_service.archive_dir / f"{report_id}.bin").exists()
    assert not list(tiny_service.archive_dir.glob(".work-*"))


def test_requests_are_validated(tiny_service: ReportService) -> None:
    with pytest.raises(ReportRequestError, match=r"unknown report notebook '\.\./etc/passwd'"):
        tiny_service.request("../etc/passwd", "pdf", {})
    with pytest.raises(ReportRequestError, match="unknown format 'docx'"):
        tiny_service.request("tiny", "docx", {})
    with pytest.raises(ReportRequestError, match="'database_url' is set by the platform"):
        tiny_service.request("tiny", "pdf", {"database_url": "postgresql://elsewhere/db"})
    with pytest.raises(ReportRequestError, match="timezone 'Mars/Olympus' is not an IANA timezone"):
        tiny_service.request("tiny", "pdf", {"timezone": "Mars/Olympus"})
    with pytest.raises(ReportRequestError, match="start 'yesterdayish'"):
        tiny_service.request("tiny", "pdf", {"start": "yesterdayish"})


def test_execution_mode_comes_from_settings(
    settings: Settings, report_platform: Platform, tiny_notebooks: Path
) -> None:
    bogus = Platform(
        dataclasses.replace(settings, report_execution="bogus"), report_platform.engine, EventBus()
    )
    with pytest.raises(ValueError, match="WORKBENCH_REPORT_EXECUTION='bogus'"):
        ReportService(bogus, notebooks_dir=tiny_notebooks)
    cold = Platform(
        dataclasses.replace(settings, report_execution="cold"), report_platform.engine, EventBus()
    )
    # The mode goes to the notebook runner as is (its cold and dask paths are tested with it).
    assert ReportService(cold, notebooks_dir=tiny_notebooks).executor.mode == "cold"


def test_progress_moves_while_a_long_notebook_runs(tiny_service: ReportService, plant: Plant) -> None:
    seen: list[dict[str, Any]] = []

    def keep(_topic: str, event: dict[str, Any]) -> None:
        seen.append(event)

    unsubscribe = tiny_service.platform.bus.subscribe(PROGRESS_TOPIC, keep)
    tiny_service.tick_seconds = 0.1
    try:
        row = tiny_service.run(tiny_service.request("slow", "html", plant.parameters()))
    finally:
        tiny_service.tick_seconds = 1.0
        unsubscribe()
    assert row["status"] == "done"
    events = [e["progress"] for e in seen if e["id"] == str(row["id"]) and "progress" in e]
    assert events == sorted(events) and events[-1] == 1.0
    assert len([p for p in events if 0.05 < p < 0.7]) >= 5  # estimated while the kernel was busy
