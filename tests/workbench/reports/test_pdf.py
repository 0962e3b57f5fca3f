"""HTML to PDF: WeasyPrint, and headless Chromium as the fallback when WeasyPrint cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader

from workbench.reports.html import REPORT_CSS, chromium_pdf, html_to_pdf

LINES = "<p>line</p>" * 120
PAGE = f"<html><head><style>{REPORT_CSS}</style></head><body><h1>Shift report</h1>{LINES}</body></html>"


@pytest.mark.slow
def test_weasyprint_prints_pages_with_numbers(tmp_path: Path) -> None:
    target = tmp_path / "report.pdf"
    html_to_pdf(PAGE, target, tmp_path)
    reader = PdfReader(target)
    assert len(reader.pages) >= 2
    assert "Shift report" in reader.pages[0].extract_text() and "1 / " in reader.pages[0].extract_text()


@pytest.mark.slow
@pytest.mark.chromium
def test_chromium_fallback_prints(tmp_path: Path) -> None:
    target = tmp_path / "report.pdf"
    chromium_pdf(PAGE, target)
    reader = PdfReader(target)
    assert len(reader.pages) >= 1 and "Shift report" in reader.pages[0].extract_text()
