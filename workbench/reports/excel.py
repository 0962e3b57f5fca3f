"""Excel workbook: a Summary sheet (provenance and summary tables) plus one sheet per device."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

if TYPE_CHECKING:
    from workbench.reports.formats import ExecutedReport
    from workbench.reports.kit import Table

TITLE = Font(bold=True, size=12, color="2F4858")
HEADER = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="2F4858")
MAX_ROWS = 1_048_000  # Excel's sheet limit is 1,048,576 rows; keep room for titles.
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


def write_workbook(report: ExecutedReport, target: Path) -> None:
    """Write the report's tables to ``target`` as .xlsx."""
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = "Summary"
    row = _write_provenance(summary, report)
    for table in report.tables:
        if table.device is None:
            row = _write_table(summary, table.name, table.frame, row, 1) + 1
    _autosize(summary)
    used = {"summary"}
    devices: dict[str, dict[str, Table]] = {}
    for table in report.tables:
        if table.device is not None:
            devices.setdefault(table.device, {})[table.kind] = table
    for device, parts in devices.items():
        sheet = book.create_sheet(sheet_name(device, used))
        aggregated, raw = parts.get("aggregated"), parts.get("raw")
        column = 1
        if aggregated is not None:
            _write_table(sheet, "Aggregated", aggregated.frame, 1, column)
            column += len(aggregated.frame.columns) + 1
        if raw is not None:
            _write_table(sheet, "Raw", raw.frame, 1, column)
        _autosize(sheet)
        sheet.freeze_panes = "A3"
    book.save(target)


def sheet_name(name: str, used: set[str]) -> str:
    """A valid, unique sheet name (31 characters, no ``[]:*?/\\``)."""
    base = _BAD_SHEET_CHARS.sub("_", name).strip("'") or "Sheet"
    candidate, number = base[:31], 2
    while candidate.lower() in used:
        suffix = f" ({number})"
        candidate, number = base[: 31 - len(suffix)] + suffix, number + 1
    used.add(candidate.lower())
    return candidate


def _write_provenance(sheet: Worksheet, report: ExecutedReport) -> int:
    sheet.cell(1, 1, report.title).font = Font(bold=True, size=14, color="2F4858")
    row = 3
    for key, value in report.provenance().items():
        if key == "parameters":
            continue
        sheet.cell(row, 1, key).font = Font(bold=True)
        sheet.cell(row, 2, str(value) if value is not None else "")
        row += 1
    for key, value in report.parameters.items():
        sheet.cell(row, 1, f"parameter {key}").font = Font(bold=True)
        sheet.cell(row, 2, value if isinstance(value, str | int | float) else json.dumps(value))
        row += 1
    return row + 1


def _write_table(sheet: Worksheet, title: str, frame: pd.DataFrame, row: int, column: int) -> int:
    """Write a titled table at (row, column); returns the next free row."""
    sheet.cell(row, column, title).font = TITLE
    frame = _excel_ready(frame.head(MAX_ROWS))
    for offset, name in enumerate(frame.columns):
        cell = sheet.cell(row + 1, column + offset, str(name))
        cell.font, cell.fill = HEADER, HEADER_FILL
    for r, values in enumerate(frame.itertuples(index=False, name=None), start=row + 2):
        for offset, value in enumerate(values):
            sheet.cell(r, column + offset, _cell_value(value))
    return row + 2 + len(frame)


def _excel_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Excel has no timezones or durations: local wall-clock times and seconds instead."""
    frame = frame.copy()
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            frame[name] = series.dt.tz_localize(None)
        elif pd.api.types.is_timedelta64_dtype(series):
            frame[name] = series.dt.total_seconds()
    return frame


def _cell_value(value: Any) -> Any:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.tz_localize(None).to_pydatetime() if value.tzinfo else value.to_pydatetime()
    if isinstance(value, pd.Timedelta):
        return value.total_seconds()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _autosize(sheet: Worksheet) -> None:
    widths: dict[int, int] = {}
    for row in sheet.iter_rows(min_row=1, max_row=min(sheet.max_row, 200)):
        for cell in row:
            if cell.value is not None:
                widths[cell.column] = max(widths.get(cell.column, 0), len(str(cell.value)))
    for column, width in widths.items():
        sheet.column_dimensions[get_column_letter(column)].width = min(max(width + 2, 8), 48)
