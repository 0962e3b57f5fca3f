"""Binary COPY payloads built in bulk: one ``struct`` pack per row instead of psycopg's ``write_row``.

The columns go in the order of ``COPY_ORDER`` so that everything fixed per series (device, key, unit)
is one cached prefix; the per-row part (time, value, quality, two NULLs) is a single pack. Rows with
metadata, text or no value are rare and take a slower branch of the same encoder.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from datetime import timedelta

from ingest.validation import Row
from workbench.db.copy_format import HEADER, PG_EPOCH, TRAILER

COPY_ORDER = ("device_id", "key", "unit", "timestamp", "value", "quality", "metadata", "text_value")
MICROSECOND = timedelta(microseconds=1)
MAX_PREFIXES = 200_000

_NULL = b"\xff\xff\xff\xff"
_SERIES = struct.Struct(">hi16si")  # column count, uuid length, uuid, key length
_NUMBER = struct.Struct(">iqidiiii")  # time, value, quality (each with its length), then two NULLs
_TIME = struct.Struct(">iq")
_VALUE = struct.Struct(">id")
_QUALITY = struct.Struct(">ii")
_LENGTH = struct.Struct(">i")


def _field(data: bytes | None) -> bytes:
    return _NULL if data is None else _LENGTH.pack(len(data)) + data


class CopyEncoder:
    """Encodes rows for ``COPY table (COPY_ORDER) FROM STDIN (FORMAT BINARY)``; keeps series prefixes."""

    def __init__(self) -> None:
        self._prefixes: dict[tuple[str, str, str | None], bytes] = {}

    def encode(self, rows: Iterable[Row]) -> bytes:
        """The whole COPY stream (signature, rows, trailer) for ``rows``."""
        prefixes = self._prefixes
        if len(prefixes) > MAX_PREFIXES:
            prefixes.clear()
        micros: dict[int, int] = {}
        parts = [HEADER]
        append = parts.append
        pack = _NUMBER.pack
        for row in rows:
            series = (row[8], row[2], row[4])
            prefix = prefixes.get(series)
            if prefix is None:
                prefix = prefixes[series] = _prefix(row)
            stamp = row[0]
            # Rows share timestamp objects (one per message): convert each once. The ids stay valid
            # because ``rows`` keeps every stamp alive while we encode.
            offset = micros.get(id(stamp))
            if offset is None:
                offset = micros[id(stamp)] = (stamp - PG_EPOCH) // MICROSECOND
            append(prefix)
            value = row[3]
            if value is not None and row[6] is None and row[7] is None:
                append(pack(8, offset, 8, value, 4, row[5], -1, -1))
            else:
                append(_TIME.pack(8, offset))
                append(_NULL if value is None else _VALUE.pack(8, value))
                append(_QUALITY.pack(4, row[5]))
                append(_field(row[6]))
                append(_field(None if row[7] is None else row[7].encode()))
        append(TRAILER)
        return b"".join(parts)


def _prefix(row: Row) -> bytes:
    key = row[2].encode()
    unit = row[4]
    return (
        _SERIES.pack(len(COPY_ORDER), 16, row[1].bytes, len(key))
        + key
        + _field(None if unit is None else unit.encode())
    )
