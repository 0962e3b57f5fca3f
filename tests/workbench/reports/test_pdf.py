"""HTML to PDF: WeasyPrint, else headless Chromium, else pure Python (fpdf2)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from pypdf import PdfReader

from workbench.reports import formats
from workbench.reports.formats import ExecutedReport
from workbench.reports.html import REPORT_CSS, chromium_pdf, html_to_pdf

LINES = "<p>line</p>" * 120
PAGE = f"<html><head><style>{REPORT_CSS}</style></head><body><h1>Shift report</h1>{LINES}</body></html>"


@pytest.mark.slow
@pytest.mark.pango
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


def _chart_png() -> str:
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 2.5), dpi=80)
    axes.plot([0, 1, 2, 3], [3.0, 1.0, 4.0, 1.5], label="flow")
    axes.set_title("Flow, l/s")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _executed_report(tmp_path: Path) -> ExecutedReport:
    """A report notebook as the kernel leaves it: Markdown, a styled table, a chart, printed text."""
    import pandas as pd

    from workbench.reports.kit import styled

    frame = pd.DataFrame({"device": ["pump-1", "pump-2 °C µ"], "readings": [1440, 1380], "mean": [2.5, 3.25]})
    table_html = styled(frame, "Readings per device")._repr_html_()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Daily plant summary\n\nThe **previous** day, per device.\n- pumps"),
        nbformat.v4.new_code_cell(
            "x",
            outputs=[
                nbformat.v4.new_output("display_data", data={"text/html": table_html, "text/plain": "t"}),
                nbformat.v4.new_output("display_data", data={"image/png": _chart_png(), "text/plain": "f"}),
                nbformat.v4.new_output("stream", name="stdout", text="3 devices reported\n"),
                nbformat.v4.new_output("stream", name="stderr", text="a warning nobody should print\n"),
            ],
        ),
        nbformat.v4.new_markdown_cell("## Alerts\n" + "Line of text. " * 400),
    ]
    return ExecutedReport(
        report_id="r-1",
        notebook_name="daily_plant_summary",
        notebook=notebook,
        notebook_path=tmp_path / "daily_plant_summary.ipynb",
        parameters={"start": "2026-03-02T00:00:00Z"},
        notebook_hash="ab" * 32,
        data_hash="cd" * 32,
        title="Daily plant summary",
        work_dir=tmp_path,
    )


def test_without_weasyprint_or_chromium_the_pure_python_engine_prints_tables_and_charts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh machine: WeasyPrint cannot load (no Pango), no chromium on PATH; the PDF still comes."""
    import sys

    from workbench.reports import html

    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import fails as without libgobject/pango
    monkeypatch.setattr(html.shutil, "which", lambda name: None)
    report = _executed_report(tmp_path)
    with pytest.raises(html.PdfEngineUnavailable):
        html_to_pdf(report.html, tmp_path / "unused.pdf", tmp_path)

    target = tmp_path / "report.pdf"
    formats.get("pdf").render(report, target, {})
    reader = PdfReader(target)
    assert len(reader.pages) >= 2
    first = reader.pages[0].extract_text()
    assert "Daily plant summary" in first and "previous day" in first and "1 / 2" in first
    assert "Readings per device" in first and "pump-2 °C µ" in first and "1,440" in first
    assert "3 devices reported" in first and "warning nobody" not in first
    assert "**" not in first and "<" not in first
    assert len(reader.pages[0].images) == 1, "the chart is in the PDF"
    last = reader.pages[-1].extract_text()
    assert "Reproducibility" in last and "ab" * 32 in last
