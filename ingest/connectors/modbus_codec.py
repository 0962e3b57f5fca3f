"""Modbus register maps: entries from ``devices.config``, read plans, and register words to numbers."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

FUNCTIONS = ("holding", "input", "coil")
TYPES = {"int16": ("h", 1), "uint16": ("H", 1), "int32": ("i", 2), "uint32": ("I", 2), "float32": ("f", 2)}
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

    @property
    def width(self) -> int:
        """Registers (or coils) this entry occupies."""
        return 1 if self.function == "coil" else TYPES[self.type][1]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Entry:
        """Validate one map entry from the device config."""
        try:
            entry = cls(
                key=str(raw["key"]),
                address=int(raw["address"]),
                function=str(raw.get("function", "holding")),
                type=str(raw.get("type", "uint16")),
                byte_order=str(raw.get("byte_order", "big")),
                word_order=str(raw.get("word_order", "big")),
                scale=float(raw.get("scale", 1.0)),
                offset=float(raw.get("offset", 0.0)),
                unit=raw.get("unit"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RegisterMapError(f"register entry {raw!r}: {error}") from None
        if entry.function not in FUNCTIONS:
            raise RegisterMapError(f"register {entry.key}: function must be one of {', '.join(FUNCTIONS)}")
        if entry.type not in TYPES:
            raise RegisterMapError(f"register {entry.key}: type must be one of {', '.join(TYPES)}")
        if entry.byte_order not in ("big", "little") or entry.word_order not in ("big", "little"):
            raise RegisterMapError(f"register {entry.key}: byte_order and word_order are big or little")
        if not 0 <= entry.address <= 65535:
            raise RegisterMapError(f"register {entry.key}: address out of 0..65535")
        return entry


def decode(entry: Entry, words: list[int]) -> float:
    """The engineering value of ``entry`` from its raw registers: decoded, times scale, plus offset."""
    if entry.function == "coil":
        return float(bool(words[0])) * entry.scale + entry.offset
    ordered = list(words) if entry.word_order == "big" else list(reversed(words))
    data = b"".join(
        w.to_bytes(2, "big") if entry.byte_order == "big" else w.to_bytes(2, "little") for w in ordered
    )
    (raw,) = struct.unpack(">" + TYPES[entry.type][0], data)
    return float(raw) * entry.scale + entry.offset


def encode(entry: Entry, value: float) -> list[int]:
    """Registers that decode to ``value`` (the simulator serves maps through this)."""
    if entry.function == "coil":
        return [1 if value else 0]
    raw = (value - entry.offset) / entry.scale
    code = TYPES[entry.type][0]
    packed = struct.pack(">" + code, raw if code == "f" else round(raw))
    words = [
        int.from_bytes(packed[i : i + 2], "big" if entry.byte_order == "big" else "little") for i in (0, 2)
    ]
    words = words[: entry.width]
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
