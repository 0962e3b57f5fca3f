"""Bulk import of history: CSV or NDJSON lines streamed into readings, submitted in chunks."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from ingest.codecs import DecodeError, document_readings
from ingest.pipeline import MessageReject, Pipeline
from ingest.points import Reading

CHUNK = 5000
MAX_ERRORS = 100
CSV_COLUMNS = ("timestamp", "device_id", "key", "value", "unit", "quality")

# Checks a reading before validation (a device key may import only its own device); returns a reason.
Gate = Callable[[Reading], str | None]


@dataclass
class ImportReport:
    """Totals of one import and the first errors (line number, reason)."""

    accepted: int = 0
    rejected: int = 0
    lines: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def error(self, line: int, reason: str) -> None:
        """Count one rejection, keeping the first MAX_ERRORS reasons."""
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "reason": reason})


class _Committed:
    """Counts outstanding submits; ``wait`` returns when all have committed."""

    def __init__(self) -> None:
        self.pending = 0
        self.cond = threading.Condition()

    def add(self) -> Callable[[], None]:
        with self.cond:
            self.pending += 1

        def done() -> None:
            with self.cond:
                self.pending -= 1
                self.cond.notify_all()

        return done

    def wait(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.pending == 0, timeout)


def run_import(
    pipeline: Pipeline, stream: IO[bytes], fmt: str, gate: Gate, timeout: float = 600.0
) -> ImportReport:
    """Read ``stream`` (csv or ndjson) to the end, submitting chunks; waits until everything committed."""
    report = ImportReport()
    committed = _Committed()
    chunk: list[Reading] = []
    numbers: list[int] = []
    rejects: list[MessageReject] = []
    lines = _csv_rows(stream, report) if fmt == "csv" else _ndjson_rows(stream, report)

    def flush() -> None:
        result = pipeline.submit(chunk, "import", committed.add(), rejects=rejects)
        report.accepted += result.accepted
        for index, reason in result.rejected:
            report.error(numbers[index], reason)

    for number, item in lines:
        if isinstance(item, MessageReject):
            rejects.append(item)
            report.error(number, item.reason)
            continue
        reason = gate(item)
        if reason is not None:
            rejects.append(MessageReject(reason, _raw(item), None, str(item.device_id)[:100]))
            report.error(number, reason)
            continue
        chunk.append(item)
        numbers.append(number)
        if len(chunk) >= CHUNK:
            flush()
            chunk, numbers, rejects = [], [], []
    if chunk or rejects:
        flush()
    if not committed.wait(timeout):
        raise TimeoutError("import queued but not committed in time")
    return report


def _raw(reading: Reading) -> bytes:
    from ingest.pipeline import reading_document

    return reading_document(reading)


def _text_lines(stream: IO[bytes]) -> Iterator[str]:
    buffered: Any = stream if isinstance(stream, io.BufferedIOBase) else io.BufferedReader(stream)
    yield from io.TextIOWrapper(buffered, encoding="utf-8", errors="replace", newline="")


def _ndjson_rows(stream: IO[bytes], report: ImportReport) -> Iterable[tuple[int, Reading | MessageReject]]:
    for number, line in enumerate(_text_lines(stream), start=1):
        report.lines = number
        if not line.strip():
            continue
        try:
            readings = document_readings(orjson.loads(line))
        except (orjson.JSONDecodeError, DecodeError) as error:
            yield number, MessageReject(f"line {number}: {error}", line.encode()[:10000])
            continue
        for reading in readings:
            yield number, reading


def _csv_rows(stream: IO[bytes], report: ImportReport) -> Iterable[tuple[int, Reading | MessageReject]]:
    reader = csv.reader(_text_lines(stream))
    header = next(reader, None)
    if header is None:
        return
    names = [name.strip().lower() for name in header]
    missing = [name for name in ("device_id", "key", "value") if name not in names]
    if missing:
        raise DecodeError(f"CSV header lacks {', '.join(missing)} (columns: {', '.join(CSV_COLUMNS)})")
    position = {name: names.index(name) for name in CSV_COLUMNS if name in names}
    for number, row in enumerate(reader, start=2):
        report.lines = number
        if not row:
            continue
        cells = {name: row[index] if index < len(row) else "" for name, index in position.items()}
        yield (
            number,
            Reading(
                cells["device_id"].strip(),
                cells["key"].strip(),
                _cell_value(cells["value"]),
                _cell_number(cells.get("timestamp", "")),
                cells.get("unit") or None,
                _cell_number(cells.get("quality", "")),
            ),
        )


def _cell_value(text: str) -> Any:
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(stripped) if stripped else None
    except ValueError:
        return text


def _cell_number(text: str) -> Any:
    stripped = text.strip()
    if not stripped:
        return None
    try:
        number = float(stripped)
    except ValueError:
        return stripped
    return int(number) if number.is_integer() else number
