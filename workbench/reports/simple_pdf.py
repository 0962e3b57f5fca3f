"""A pure-Python PDF of an executed report (fpdf2): the engine every installation has.

WeasyPrint needs Pango and Chromium is a system package; a machine with neither still gets its PDF from
here: the notebook's Markdown, tables and charts (the PNG outputs), page numbers and the provenance footer,
in DejaVu fonts that ship with matplotlib.
"""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

if TYPE_CHECKING:
    from workbench.reports.formats import ExecutedReport

INK = (34, 34, 34)
ACCENT = (47, 72, 88)
MUTED = (102, 102, 102)
_HEADINGS = {1: 16.0, 2: 13.0, 3: 11.5, 4: 10.5, 5: 10.0, 6: 10.0}


class _Pdf(FPDF):
    """A4 pages with the report's title at the top and ``page / pages`` at the bottom right."""

    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.report_title = title
        self.set_margins(12, 14, 12)
        self.set_auto_page_break(True, margin=16)
        self.fonts_family = _register_fonts(self)
        self.set_title(title)

    def footer(self) -> None:
        """Page numbers, as the HTML engines print them."""
        self.set_y(-12)
        self.set_font(self.fonts_family, size=8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, f"{self.page_no()} / {{nb}}", align="R")


def _register_fonts(pdf: FPDF) -> str:
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        pdf.add_font("DejaVu", "", str(folder / "DejaVuSans.ttf"))
        pdf.add_font("DejaVu", "B", str(folder / "DejaVuSans-Bold.ttf"))
        pdf.add_font("DejaVu", "I", str(folder / "DejaVuSans-Oblique.ttf"))
        pdf.add_font("DejaVuMono", "", str(folder / "DejaVuSansMono.ttf"))
        return "DejaVu"
    except (ImportError, OSError, FileNotFoundError):
        return "helvetica"  # Latin-1 only; _text() replaces what it cannot show


def notebook_pdf(report: ExecutedReport, target: Path) -> None:
    """Write ``report`` as a PDF: Markdown cells, tables, charts and text outputs, then provenance."""
    pdf = _Pdf(report.title)
    pdf.add_page()
    writer = _Writer(pdf)
    for cell in report.notebook.cells:
        if cell.cell_type == "markdown":
            writer.markdown(cell.source)
        elif cell.cell_type == "code":
            for output in cell.get("outputs", []):
                writer.output(output)
    writer.provenance(report.provenance())
    pdf.output(str(target))


class _Writer:
    """Lays out notebook content on the PDF, one block after another."""

    def __init__(self, pdf: _Pdf) -> None:
        self.pdf = pdf
        self.family = pdf.fonts_family

    def _text(self, text: str) -> str:
        if self.family == "helvetica":
            return text.encode("latin-1", "replace").decode("latin-1")
        return text

    def _paragraph(self, text: str, size: float = 10, style: str = "", color: tuple[int, ...] = INK) -> None:
        self.pdf.set_font(self.family, style, size)
        self.pdf.set_text_color(*color)
        self.pdf.multi_cell(0, size * 0.5, self._text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.ln(1.5)

    def markdown(self, source: str) -> None:
        """Headings, bullets and paragraphs; inline marks are dropped."""
        block: list[str] = []

        def flush() -> None:
            if block:
                self._paragraph(_inline(" ".join(block)))
                block.clear()

        for line in source.splitlines():
            stripped = line.strip()
            heading = re.match(r"(#{1,6})\s+(.*)", stripped)
            bullet = re.match(r"[-*+]\s+(.*)", stripped)
            if heading:
                flush()
                level = len(heading.group(1))
                self.pdf.ln(2)
                self._paragraph(_inline(heading.group(2)), _HEADINGS[level], "B", ACCENT)
                if level == 1:
                    self.pdf.set_draw_color(*ACCENT)
                    self.pdf.line(self.pdf.l_margin, self.pdf.get_y(), self.pdf.w - self.pdf.r_margin,
                                  self.pdf.get_y())  # fmt: skip
                    self.pdf.ln(2)
            elif bullet:
                flush()
                self._paragraph("• " + _inline(bullet.group(1)))
            elif not stripped:
                flush()
            else:
                block.append(stripped)
        flush()

    def output(self, output: Any) -> None:
        """One cell output: a chart, a table, Markdown or text (stderr and code are left out)."""
        kind = output.get("output_type")
        if kind == "stream":
            if output.get("name") == "stdout":
                self.plain(output.get("text", ""))
            return
        if kind == "error":
            self._paragraph(f"{output.get('ename')}: {output.get('evalue')}", color=(160, 0, 0))
            return
        data = output.get("data", {})
        if "image/png" in data:
            self.image(data["image/png"])
        elif "text/html" in data and "<table" in _joined(data["text/html"]):
            for caption, rows in _tables(_joined(data["text/html"])):
                self.table(caption, rows)
        elif "text/markdown" in data:
            self.markdown(_joined(data["text/markdown"]))
        elif "text/plain" in data:
            self.plain(_joined(data["text/plain"]))

    def plain(self, text: str) -> None:
        """Preformatted text in the monospace font."""
        if not text.strip():
            return
        family = "DejaVuMono" if self.family == "DejaVu" else "courier"
        self.pdf.set_font(family, "", 8)
        self.pdf.set_text_color(*INK)
        self.pdf.multi_cell(0, 3.8, self._text(text.rstrip()), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.ln(1.5)

    def image(self, encoded: str | list[str]) -> None:
        """A PNG output (a matplotlib chart) at the text width, kept on one page."""
        raw = base64.b64decode(_joined(encoded))
        width = self.pdf.epw
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as picture:
            height = width * picture.height / picture.width
        if self.pdf.get_y() + height > self.pdf.page_break_trigger:
            self.pdf.add_page()
        self.pdf.image(io.BytesIO(raw), x=self.pdf.l_margin, w=width, h=height)
        self.pdf.ln(2)

    def table(self, caption: str, rows: list[list[tuple[str, bool]]]) -> None:
        """A table with a header row in the report's colours."""
        if not rows:
            return
        if caption:
            self._paragraph(caption, 9.5, "B", (51, 51, 51))
        columns = max(len(row) for row in rows)
        self.pdf.set_font(self.family, "", 7.5 if columns <= 8 else 6)
        self.pdf.set_text_color(*INK)
        self.pdf.set_draw_color(221, 221, 221)
        with self.pdf.table(
            headings_style=_heading_style(self.family),
            line_height=3.6,
            first_row_as_headings=all(header for _, header in rows[0]),
            cell_fill_color=(244, 246, 248),
            cell_fill_mode="ROWS",
            borders_layout="HORIZONTAL_LINES",
        ) as table:
            for cells in rows:
                row = table.row()
                for text, _ in cells + [("", False)] * (columns - len(cells)):
                    row.cell(self._text(text))
        self.pdf.ln(3)

    def provenance(self, values: dict[str, Any]) -> None:
        """The reproducibility footer: notebook, parameters and hashes."""
        self.pdf.ln(4)
        self._paragraph("Reproducibility", 8, "B", MUTED)
        self.pdf.set_font(self.family, "", 7)
        self.pdf.set_text_color(*MUTED)
        for key, value in values.items():
            text = json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list) else value
            self.pdf.multi_cell(0, 3.4, self._text(f"{key}: {text}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _heading_style(family: str) -> Any:
    from fpdf.fonts import FontFace

    return FontFace(family=family, emphasis="BOLD", color=(255, 255, 255), fill_color=ACCENT)


def _joined(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def _inline(text: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images keep their text
    text = re.sub(r"(\*\*|__|\*|_(?=\S)|`)", "", text)
    return text


def _tables(page: str) -> list[tuple[str, list[list[tuple[str, bool]]]]]:
    parser = _TableParser()
    parser.feed(page)
    return parser.tables


class _TableParser(HTMLParser):
    """Captions and cell texts (with a header flag) of every ``<table>`` in an HTML output."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[str, list[list[tuple[str, bool]]]]] = []
        self._rows: list[list[tuple[str, bool]]] | None = None
        self._caption: list[str] = []
        self._cell: list[str] | None = None
        self._header = False
        self._in_caption = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Open tables, rows, cells and captions; ignore style and script."""
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "table":
            self._rows, self._caption = [], []
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell, self._header = [], tag == "th"

    def handle_endtag(self, tag: str) -> None:
        """Close what handle_starttag opened."""
        if tag in ("style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag == "caption":
            self._in_caption = False
        elif tag in ("td", "th") and self._cell is not None and self._rows:
            self._rows[-1].append((" ".join("".join(self._cell).split()), self._header))
            self._cell = None
        elif tag == "table" and self._rows is not None:
            rows = [row for row in self._rows if row]
            self.tables.append((" ".join("".join(self._caption).split()), rows))
            self._rows = None

    def handle_data(self, data: str) -> None:
        """Collect text of the open cell or caption."""
        if self._skip:
            return
        if self._in_caption:
            self._caption.append(data)
        elif self._cell is not None:
            self._cell.append(data)
