"""Validation: raw readings in, rows ready for binary COPY out, every rejection with its reason."""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ingest.directory import DeviceDirectory
from ingest.points import Reading

KEY_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,99}")
MAX_UNIT = 20
MAX_TEXT = 10_000
# Epoch numbers at or above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
EPOCH_MS_THRESHOLD = 1e11

# Row layout handed to the writer: the COPY columns, then the device id as text (for events).
COPY_COLUMNS = ("timestamp", "device_id", "key", "value", "unit", "quality", "metadata", "text_value")
# metadata goes as jsonb's binary wire format (version byte 1 + JSON text), sent through bytea's dumper.
COPY_TYPES = ("timestamptz", "uuid", "varchar", "float8", "varchar", "int4", "bytea", "text")
Row = tuple[datetime, uuid.UUID, str, float | None, str | None, int, bytes | None, str | None, str]


class Rejected(ValueError):
    """A reading (or message) that cannot be stored; the message is the quarantine reason."""


@dataclass
class Validated:
    """The outcome of validating a list of readings: good rows and (index, reason) for the rest."""

    rows: list[Row] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)


# The largest finite double: the default magnitude bound accepts every finite value.
MAX_FLOAT = 1.7976931348623157e308


@dataclass(frozen=True)
class Bounds:
    """Accepted timestamp window relative to the time of receipt, and the largest accepted |value|."""

    max_age: timedelta
    max_future: timedelta
    max_abs_value: float = MAX_FLOAT


class Validator:
    """Applies the ingest rules to readings; holds caches that keep the per-point work small."""

    def __init__(self, directory: DeviceDirectory, bounds: Bounds) -> None:
        self.directory = directory
        self.bounds = bounds
        # Keys and units that passed once: later readings skip their checks (also used by the fast path).
        self.good_keys: set[str] = set()
        self.good_units: set[str] = set()

    def validate(self, readings: list[Reading], received: datetime | None = None) -> Validated:
        """Validate every reading; never raises for bad input."""
        now = received or datetime.now(UTC)
        low, high = now - self.bounds.max_age, now + self.bounds.max_future
        out = Validated()
        rows, rejected = out.rows, out.rejected
        stamp_cache: dict[Any, datetime] = {}
        meta_cache: dict[int, bytes | None] = {}
        devices: dict[Any, tuple[uuid.UUID, str]] = {}
        good_keys, good_units = self.good_keys, self.good_units
        limit = self.bounds.max_abs_value
        append = rows.append
        for index, reading in enumerate(readings):
            # Fast path for the common reading (known device, seen key and unit, finite number, cached
            # timestamp, no metadata); anything else takes the full path below, which explains rejections.
            try:
                device = devices.get(reading.device_id)
                value = reading.value
                kind = type(value)
                if kind is int and -limit <= value <= limit:
                    value = float(value)
                elif kind is not float or not -limit <= value <= limit:  # also NaN/inf
                    device = None
                raw_ts = reading.timestamp
                stamp: datetime | None
                if raw_ts is None:
                    stamp = now
                else:
                    stamp = stamp_cache.get(raw_ts)
                    if stamp is None and type(raw_ts) in (str, int, float):
                        # A new time (a batch of history has one per point): parse it here; a bad one
                        # raises and the full path below explains it.
                        stamp = parse_timestamp(raw_ts)
                        if low <= stamp <= high:
                            stamp_cache[raw_ts] = stamp
                        else:
                            stamp = None
                quality = reading.quality
                if quality is None:
                    quality = 100
                elif type(quality) is not int or not 0 <= quality <= 100:
                    device = None
                unit = reading.unit
                key = reading.key
                if (
                    device is not None
                    and stamp is not None
                    and key in good_keys
                    and (unit is None or unit in good_units)
                    and not reading.metadata
                ):
                    append((stamp, device[0], key, value, unit, quality, None, None, device[1]))
                    continue
            except Exception:  # unhashable or odd input: the full path below says what is wrong
                pass
            try:
                row = self._row(reading, now, low, high, stamp_cache, meta_cache)
                append(row)
                with contextlib.suppress(TypeError):  # an unhashable id is simply not cached
                    devices[reading.device_id] = (row[1], row[8])
            except Rejected as error:
                rejected.append((index, str(error)))
            except Exception as error:  # anything unforeseen is a rejection with its reason, never a crash
                rejected.append((index, f"invalid reading: {type(error).__name__}: {error}"[:500]))
        return out

    def _row(
        self,
        reading: Reading,
        now: datetime,
        low: datetime,
        high: datetime,
        stamp_cache: dict[Any, datetime],
        meta_cache: dict[int, bytes | None],
    ) -> Row:
        device_text = canonical_device(reading.device_id)
        device = self.directory.lookup(device_text)
        if device is None:
            raise Rejected(f"unknown device {device_text!r}")
        key = reading.key
        if key not in self.good_keys:
            if type(key) is not str or not KEY_PATTERN.fullmatch(key):
                raise Rejected(f"invalid key {str(key)[:120]!r}: 1-100 of A-Z a-z 0-9 _ . : -")
            if len(self.good_keys) < 100_000:
                self.good_keys.add(key)
        value, text = _value(reading.value, key, device.text_keys)
        if value is not None and abs(value) > self.bounds.max_abs_value:
            raise Rejected(
                f"value of {key!r} beyond the magnitude bound {self.bounds.max_abs_value:g} "
                "(WORKBENCH_INGEST_MAX_ABS_VALUE)"
            )
        raw_ts = reading.timestamp
        if raw_ts is None:
            stamp = now
        else:
            cache_key = raw_ts if type(raw_ts) in (str, int, float) else id(raw_ts)
            cached = stamp_cache.get(cache_key)
            if cached is None:
                cached = parse_timestamp(raw_ts)
                if not low <= cached <= high:
                    raise Rejected(f"timestamp {cached.isoformat()} outside [{low:%Y-%m-%d}, now + bounds]")
                stamp_cache[cache_key] = cached
            stamp = cached
        unit = reading.unit
        if unit is not None and unit not in self.good_units:
            if type(unit) is not str or len(unit) > MAX_UNIT or "\x00" in unit:
                raise Rejected(f"unit must be text of at most {MAX_UNIT} characters")
            if len(self.good_units) < 10_000:
                self.good_units.add(unit)
        quality = _quality(reading.quality)
        meta = reading.metadata
        blob: bytes | None = None
        if meta:
            ref = id(meta)
            if ref in meta_cache:
                blob = meta_cache[ref]
            else:
                if not isinstance(meta, dict):
                    raise Rejected("metadata must be an object")
                blob = b"\x01" + orjson.dumps(meta, option=orjson.OPT_NON_STR_KEYS)
                meta_cache[ref] = blob
        return (stamp, device.id, key, value, unit, quality, blob, text, device_text)


def canonical_device(device_id: Any) -> str:
    """The device id as lowercase canonical UUID text; raises Rejected when it is not a UUID."""
    if isinstance(device_id, uuid.UUID):
        return str(device_id)
    if type(device_id) is str:
        if len(device_id) == 36 and device_id.islower():
            return device_id
        try:
            return str(uuid.UUID(device_id))
        except ValueError:
            pass
    raise Rejected(f"device id must be a UUID, got {str(device_id)[:80]!r}")


def _value(raw: Any, key: str, text_keys: frozenset[str]) -> tuple[float | None, str | None]:
    kind = type(raw)
    if kind is float:
        if raw != raw or raw in (math.inf, -math.inf):
            raise Rejected(f"value of {key!r} is not finite")
        return raw, None
    if kind is int:
        try:
            value = float(raw)
        except OverflowError:
            raise Rejected(f"value of {key!r} is too large") from None
        if value in (math.inf, -math.inf):
            raise Rejected(f"value of {key!r} is too large")
        return value, None
    if kind is bool:
        return (1.0 if raw else 0.0), None
    if kind is str:
        if key in text_keys:
            if len(raw) > MAX_TEXT:
                raise Rejected(f"text value of {key!r} longer than {MAX_TEXT} characters")
            if "\x00" in raw:
                raise Rejected(f"text value of {key!r} contains a NUL character")
            return None, raw
        raise Rejected(f"string value for {key!r}, which is not declared text (config.text_keys)")
    if raw is None:
        raise Rejected(f"missing value for {key!r}")
    raise Rejected(f"value of {key!r} must be a number, boolean or declared text, got {kind.__name__}")


def _quality(raw: Any) -> int:
    if raw is None:
        return 100
    if type(raw) is int:
        quality = raw
    elif type(raw) is float and raw.is_integer():
        quality = int(raw)
    else:
        raise Rejected(f"quality must be an integer 0-100, got {str(raw)[:40]!r}")
    if not 0 <= quality <= 100:
        raise Rejected(f"quality must be an integer 0-100, got {quality}")
    return quality


def parse_timestamp(raw: Any) -> datetime:
    """A timezone-aware UTC datetime from ISO 8601 text or epoch seconds/milliseconds; raises Rejected."""
    kind = type(raw)
    if kind is str:
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise Rejected(f"timestamp {raw[:60]!r} is not ISO 8601 or epoch seconds/milliseconds") from None
        if stamp.tzinfo is None:
            return stamp.replace(tzinfo=UTC)  # naive timestamps are UTC (documented)
        return stamp.astimezone(UTC)
    if kind is int or kind is float:
        if not math.isfinite(raw):
            raise Rejected("timestamp is not finite")
        seconds = raw / 1000 if abs(raw) >= EPOCH_MS_THRESHOLD else raw
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise Rejected(f"timestamp {raw!r} out of range") from None
    if isinstance(raw, datetime):
        return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw.astimezone(UTC)
    raise Rejected(f"timestamp must be ISO 8601 text or an epoch number, got {kind.__name__}")
