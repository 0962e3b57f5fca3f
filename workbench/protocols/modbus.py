"""Modbus register maps: entries from ``devices.config``, their validation, read plans, and word codecs.

Lives in ``workbench`` so the devices API validates a map with the same rules the connector reads it by.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import marshmallow as ma

# Register tables: read/write holding registers, read-only input registers, read/write coils, read-only
# discrete inputs.
FUNCTIONS = ("holding", "input", "coil", "discrete")
BIT_FUNCTIONS = ("coil", "discrete")
WRITABLE_FUNCTIONS = ("holding", "coil")
# Numeric types: struct code and registers; "string" takes ``length`` registers (two characters each).
TYPES = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "float32": ("f", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float64": ("d", 4),
    "string": ("", 0),
}
ORDERS = ("big", "little")
# A Modbus read returns at most 125 registers (2000 coils); stay under both.
MAX_SPAN = 120


class RegisterMapError(ValueError):
    """A register map entry the connector cannot read; the message names the entry."""


@dataclass(frozen=True)
class Entry:
    """One value in a device's register map."""

    key: str
    address: int
    function: str = "holding"
    type: str = "uint16"
    byte_order: str = "big"
    word_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    length: int = 1
    writable: bool = False

    @property
    def width(self) -> int:
        """Registers (or coils) this entry occupies."""
        if self.function in BIT_FUNCTIONS:
            return 1
        return self.length if self.type == "string" else TYPES[self.type][1]

    @property
    def is_text(self) -> bool:
        """True for string registers (their key is a text key)."""
        return self.type == "string" and self.function not in BIT_FUNCTIONS

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Entry:
        """Validate one map entry from the device config."""
        if not isinstance(raw, dict):
            raise RegisterMapError(f"register entry {raw!r}: not an object")
        errors = RegisterSchema().validate(raw)
        if errors:
            name = raw.get("key", raw.get("address", "?"))
            detail = "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in errors.items())
            raise RegisterMapError(f"register {name}: {detail}")
        loaded = RegisterSchema().load(raw)
        return cls(**loaded)


class RegisterSchema(ma.Schema):
    """One register map entry, as the API accepts it."""

    class Meta:
        unknown = ma.RAISE

    key = ma.fields.String(
        required=True, validate=ma.validate.Regexp(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,99}$")
    )
    address = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=0, max=65535))
    function = ma.fields.String(load_default="holding", validate=ma.validate.OneOf(FUNCTIONS))
    type = ma.fields.String(load_default="uint16", validate=ma.validate.OneOf(list(TYPES)))
    byte_order = ma.fields.String(load_default="big", validate=ma.validate.OneOf(ORDERS))
    word_order = ma.fields.String(load_default="big", validate=ma.validate.OneOf(ORDERS))
    scale = ma.fields.Float(load_default=1.0, allow_nan=False)
    offset = ma.fields.Float(load_default=0.0, allow_nan=False)
    unit = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.Length(max=20))
    length = ma.fields.Integer(
        load_default=1,
        strict=True,
        validate=ma.validate.Range(min=1, max=MAX_SPAN),
        metadata={"description": "registers of a string"},
    )
    writable = ma.fields.Boolean(load_default=False)

    @ma.validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("scale") == 0:
            raise ma.ValidationError("must not be 0", "scale")
        if data.get("type") == "string" and data.get("function") in BIT_FUNCTIONS:
            raise ma.ValidationError("a string lives in holding or input registers", "type")
        if data.get("writable") and data.get("function") not in WRITABLE_FUNCTIONS:
            raise ma.ValidationError("only holding registers and coils are writable", "writable")
        end = data.get("address", 0) + Entry(**{k: v for k, v in data.items() if k in _FIELDS}).width
        if end > 65536:
            raise ma.ValidationError("runs past register 65535", "address")


_FIELDS = set(Entry.__dataclass_fields__)


class ModbusConfigSchema(ma.Schema):
    """A Modbus TCP device's ``config`` (other keys are kept as they are)."""

    class Meta:
        unknown = ma.INCLUDE

    host = ma.fields.String(validate=ma.validate.Length(min=1, max=255))
    port = ma.fields.Integer(strict=True, validate=ma.validate.Range(min=1, max=65535))
    unit_id = ma.fields.Integer(strict=True, validate=ma.validate.Range(min=0, max=255))
    interval_ms = ma.fields.Integer(strict=True, validate=ma.validate.Range(min=10))
    timeout_ms = ma.fields.Integer(strict=True, validate=ma.validate.Range(min=10))
    max_gap = ma.fields.Integer(strict=True, validate=ma.validate.Range(min=0, max=MAX_SPAN))
    registers = ma.fields.List(ma.fields.Nested(RegisterSchema), required=True)

    @ma.validates("registers")
    def _unique_keys(self, value: list[dict[str, Any]], **kwargs: Any) -> None:
        keys = [entry["key"] for entry in value]
        doubles = sorted({key for key in keys if keys.count(key) > 1})
        if doubles:
            raise ma.ValidationError(f"keys used twice: {', '.join(doubles)}")


def _data(entry: Entry, words: list[int]) -> bytes:
    ordered = list(words) if entry.word_order == "big" else list(reversed(words))
    return b"".join(w.to_bytes(2, "big" if entry.byte_order == "big" else "little") for w in ordered)


def decode(entry: Entry, words: list[int]) -> float | str:
    """The engineering value of ``entry`` from its raw registers: decoded, times scale, plus offset."""
    if entry.function in BIT_FUNCTIONS:
        return float(bool(words[0])) * entry.scale + entry.offset
    if entry.type == "string":
        # Characters fill each register high byte first (byte_order little swaps them); NULs pad.
        data = b"".join(w.to_bytes(2, "big" if entry.byte_order == "big" else "little") for w in words)
        return data.rstrip(b"\x00").decode("utf-8", errors="replace").rstrip()
    (raw,) = struct.unpack(">" + TYPES[entry.type][0], _data(entry, words))
    return float(raw) * entry.scale + entry.offset


def encode(entry: Entry, value: float | str | bool) -> list[int]:
    """Registers (or one bit) that decode to ``value``; ``RegisterMapError`` when it does not fit."""
    if entry.function in BIT_FUNCTIONS:
        return [1 if value else 0]
    if entry.type == "string":
        data = str(value).encode("utf-8")
        if len(data) > entry.length * 2:
            raise RegisterMapError(f"register {entry.key}: text longer than {entry.length * 2} bytes")
        data = data.ljust(entry.length * 2, b"\x00")
        little = entry.byte_order == "little"
        return [
            int.from_bytes(data[i : i + 2], "little" if little else "big") for i in range(0, len(data), 2)
        ]
    if isinstance(value, str):
        raise RegisterMapError(f"register {entry.key}: a number is needed")
    raw = (float(value) - entry.offset) / entry.scale
    code = TYPES[entry.type][0]
    try:
        packed = struct.pack(">" + code, raw if code in "fd" else round(raw))
    except (struct.error, OverflowError) as error:
        raise RegisterMapError(f"register {entry.key}: {value} does not fit {entry.type}: {error}") from None
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]
    if entry.byte_order == "little":
        words = [int.from_bytes(w.to_bytes(2, "big"), "little") for w in words]
    return words if entry.word_order == "big" else list(reversed(words))


@dataclass(frozen=True)
class Span:
    """One read request: a function, a start address, a count, and the entries it serves."""

    function: str
    start: int
    count: int
    entries: tuple[Entry, ...]


def plan(entries: list[Entry], max_gap: int = 0) -> list[Span]:
    """Group entries into as few reads as possible (close addresses of one function share a read)."""
    spans: list[Span] = []
    for function in FUNCTIONS:
        chosen = sorted((e for e in entries if e.function == function), key=lambda e: e.address)
        group: list[Entry] = []
        for entry in chosen:
            if group:
                start = group[0].address
                end = max(e.address + e.width for e in group)
                if entry.address - end > max_gap or entry.address + entry.width - start > MAX_SPAN:
                    spans.append(_span(function, group))
                    group = []
            group.append(entry)
        if group:
            spans.append(_span(function, group))
    return spans


def _span(function: str, group: list[Entry]) -> Span:
    start = group[0].address
    end = max(e.address + e.width for e in group)
    return Span(function, start, end - start, tuple(group))
