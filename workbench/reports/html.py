"""Executed notebook to HTML (code hidden) and HTML to PDF (WeasyPrint, else headless Chromium)."""

from __future__ import annotations

import html
import json
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.reports.formats import ExecutedReport

log = logging.getLogger(__name__)


class PdfEngineUnavailable(RuntimeError):
    """Neither WeasyPrint (with Pango) nor Chromium can print here; the pure-Python engine takes over."""


# Print-friendly tables and figures, for the screen and for the PDF.
REPORT_CSS = """
@page { size: A4; margin: 14mm 12mm 16mm 12mm;
        @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; color: #666; } }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #222; }
body { max-width: 60em; margin: 0 auto; }
pre { white-space: pre-wrap; font-size: 8.5pt; }
table { border-collapse: collapse; margin: 6px 0 14px 0; font-size: 8.5pt; page-break-inside: auto; }
tr { page-break-inside: avoid; }
caption { caption-side: top; text-align: left; font-weight: bold; padding: 4px 0; color: #333;
          white-space: nowrap; }
.anchor-link { display: none; }
th { background: #2f4858; color: #fff; padding: 3px 6px; text-align: left; }
td { padding: 2px 6px; border-bottom: 1px solid #ddd; }
tbody tr:nth-child(even) td { background: #f4f6f8; }
img { max-width: 100%; page-break-inside: avoid; }
h1 { color: #2f4858; border-bottom: 2px solid #2f4858; padding-bottom: 4px; }
h2 { color: #2f4858; margin-top: 18px; page-break-after: avoid; }
.report-provenance { margin-top: 24px; font-size: 7.5pt; color: #666; border-top: 1px solid #ccc; }
.report-provenance td { border: none; padding: 1px 6px; background: none !important; }
"""


def notebook_html(report: ExecutedReport) -> str:
    """The executed notebook as a standalone HTML page: no code, no prompts, a provenance footer."""
    from nbconvert import HTMLExporter

    # The "basic" template is the cells alone: a page of our own around it prints twice as fast as "lab".
    exporter = HTMLExporter(
        template_name="basic", exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    body, _ = exporter.from_notebook_node(report.notebook)
    rows = "".join(
        f"<tr><td>{html.escape(str(key))}</td><td><code>{html.escape(_text(value))}</code></td></tr>"
        for key, value in report.provenance().items()
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(report.title)}</title><style>{REPORT_CSS}</style></head>"
        f'<body><main class="report">{body}</main>'
        f'<div class="report-provenance"><p>Reproducibility</p><table>{rows}</table></div></body></html>'
    )


def _text(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list) else str(value)


def html_to_pdf(page: str, target: Path, base_url: Path) -> None:
    """Print ``page`` to ``target``: WeasyPrint first, headless Chromium if WeasyPrint is unusable."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as error:  # OSError: missing pango/cairo system libraries
        if _chromium() is None:
            raise PdfEngineUnavailable(
                f"WeasyPrint cannot load ({error}) and no chromium is installed"
            ) from None
        log.debug("WeasyPrint unavailable (%s); printing with headless Chromium", error)
        chromium_pdf(page, target)
        return
    try:
        HTML(string=page, base_url=str(base_url)).write_pdf(str(target))
    except Exception as error:
        if _chromium() is None:
            if isinstance(error, OSError):  # a system library WeasyPrint loads late
                raise PdfEngineUnavailable(f"WeasyPrint cannot print ({error})") from error
            raise
        log.warning("WeasyPrint failed (%s); printing with headless Chromium", error)
        chromium_pdf(page, target)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_pdf(page: str, target: Path) -> None:
    """Print ``page`` with headless Chromium (``chromium`` or ``chromium-browser`` on PATH)."""
    binary = _chromium()
    if binary is None:
        raise PdfEngineUnavailable("no PDF engine: WeasyPrint failed and no chromium is installed")
    with tempfile.TemporaryDirectory(prefix="workbench-print-") as folder:
        source = Path(folder) / "report.html"
        source.write_text(page, encoding="utf-8")
        subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={folder}/profile",
             "--no-pdf-header-footer", f"--print-to-pdf={target}", source.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    if not target.exists() or target.stat().st_size == 0:
        raise RuntimeError("headless Chromium wrote no PDF")
