"""Modbus register maps for the connector and simulator: the definitions in ``workbench.protocols``."""

from __future__ import annotations

from workbench.protocols.modbus import (
    BIT_FUNCTIONS,
    FUNCTIONS,
    MAX_SPAN,
    TYPES,
    WRITABLE_FUNCTIONS,
    Entry,
    RegisterMapError,
    Span,
    decode,
    encode,
    plan,
)

__all__ = [
    "BIT_FUNCTIONS",
    "FUNCTIONS",
    "MAX_SPAN",
    "TYPES",
    "WRITABLE_FUNCTIONS",
    "Entry",
    "RegisterMapError",
    "Span",
    "decode",
    "encode",
    "plan",
]
