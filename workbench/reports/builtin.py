"""The built-in report formats: HTML, PDF, Excel and ZIP (PDF + Excel + CSV + executed notebook)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import nbformat

from workbench.reports.excel import write_workbook
from workbench.reports.formats import ExecutedReport, ReportFormat, get, register
from workbench.reports.html import PdfEngineUnavailable, html_to_pdf


@register
class HtmlFormat(ReportFormat):
    """A standalone HTML page, code hidden."""

    name = "html"
    extension = "html"
    media_type = "text/html"

    def render(self, report: ExecutedReport, target: Path, options: dict[str, Any]) -> None:
        """Write the page."""
        target.write_text(report.html, encoding="utf-8")


@register
class PdfFormat(ReportFormat):
    """The HTML page printed to PDF (A4, page numbers, provenance footer); pure Python without Pango."""

    name = "pdf"
    extension = "pdf"
    media_type = "application/pdf"

    def render(self, report: ExecutedReport, target: Path, options: dict[str, Any]) -> None:
        """Print the page with WeasyPrint or Chromium, else lay the notebook out with fpdf2."""
        try:
            html_to_pdf(report.html, target, report.work_dir)
        except PdfEngineUnavailable:
            from workbench.reports.simple_pdf import notebook_pdf

            notebook_pdf(report, target)


@register
class ExcelFormat(ReportFormat):
    """A workbook: a Summary sheet plus one sheet per device with raw and aggregated data."""

    name = "excel"
    extension = "xlsx"
    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def render(self, report: ExecutedReport, target: Path, options: dict[str, Any]) -> None:
        """Write the workbook."""
        write_workbook(report, target)


@register
class ZipFormat(ReportFormat):
    """Everything in one archive: PDF, Excel, one CSV per table, the executed notebook, provenance."""

    name = "zip"
    extension = "zip"
    media_type = "application/zip"

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """``include_pdf`` can be switched off for very large reports."""
        return {
            "type": "object",
            "properties": {"include_pdf": {"type": "boolean", "default": True}},
            "additionalProperties": False,
        }

    def render(self, report: ExecutedReport, target: Path, options: dict[str, Any]) -> None:
        """Render the member formats into the work folder, then pack them."""
        stem = _slug(report.notebook_name)
        parts: list[tuple[Path, str]] = []
        members = ["excel", "pdf"] if options.get("include_pdf", True) else ["excel"]
        for name in members:
            member = get(name)
            path = report.work_dir / f"{stem}.{member.extension}"
            member.render(report, path, {})
            parts.append((path, path.name))
        notebook_path = report.work_dir / f"{stem}.executed.ipynb"
        nbformat.write(report.notebook, notebook_path)
        parts.append((notebook_path, notebook_path.name))
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path, arcname in parts:
                archive.write(path, arcname)
            used: set[str] = set()
            for table in report.tables:
                name = _slug(table.name)
                while name in used:
                    name += "_"
                used.add(name)
                archive.writestr(f"csv/{name}.csv", table.frame.to_csv(index=False))
            archive.writestr("provenance.json", report.provenance_json())


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "report"
