"""Pieces every rule condition shares: operators, windows, targets, severities and message templates."""

from __future__ import annotations

import operator
import re
import string
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
DEFAULT_MESSAGE = "{rule}: {device} {key} = {value} (threshold {threshold})"
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")

Errors = dict[str, str]


def compare(left: Any, op: str, right: Any) -> Any:
    """Apply the comparison ``op`` element-wise (numpy arrays or scalars)."""
    return OPERATORS[op](left, right)


def parse_window(text: Any) -> float:
    """Seconds in a window such as ``"90s"``, ``"5m"``, ``"1h"``, ``"2d"`` (or a number of seconds)."""
    if isinstance(text, bool):
        raise ValueError("a window is a duration such as 5m or 1h")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _WINDOW.match(str(text))
        if not match:
            raise ValueError("a window is a duration such as 30s, 5m, 1h or 1d")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not seconds > 0:
        raise ValueError("a window must be longer than zero")
    return seconds


def is_number(value: Any) -> bool:
    """A real, finite number (booleans are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))


def is_uuid(value: Any) -> bool:
    """Whether ``value`` is a UUID string."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def check_key(errors: Errors, field: str, value: Any) -> None:
    """Record an error when ``value`` is not a telemetry key name."""
    if not isinstance(value, str) or not _KEY.match(value):
        errors[field] = "required: a telemetry key (letters, digits, _ . : / -, at most 100)"


def check_operator(errors: Errors, field: str, value: Any) -> None:
    """Record an error when ``value`` is not one of the operators."""
    if value not in OPERATORS:
        errors[field] = f"must be one of {', '.join(OPERATORS)}"


def check_number(
    errors: Errors, field: str, value: Any, required: bool = True, minimum: float | None = None
) -> None:
    """Record an error when ``value`` is not a finite number (>= minimum)."""
    if value is None and not required:
        return
    if not is_number(value):
        errors[field] = "required: a finite number" if required else "must be a finite number"
    elif minimum is not None and value < minimum:
        errors[field] = f"must be >= {minimum}"


def validate_target(target: Any, device_id: Any = None) -> Errors:
    """Errors of a target: ``{"device_id"}``, ``{"device_ids": [...]}``, ``{"device_type"}``, ``{"area"}``."""
    errors: Errors = {}
    if target is None:
        if device_id is not None and not is_uuid(device_id):
            errors["device_id"] = "must be a UUID"
        return errors
    if not isinstance(target, Mapping):
        return {"target": "must be an object with device_id, device_ids, device_type or area"}
    kinds = [k for k in ("device_id", "device_ids", "device_type", "area", "all") if k in target]
    unknown = sorted(set(target) - {"device_id", "device_ids", "device_type", "area", "all"})
    if unknown:
        errors["target"] = f"unknown field(s): {', '.join(unknown)}"
    elif len(kinds) != 1:
        errors["target"] = "give exactly one of device_id, device_ids, device_type, area, all"
    elif kinds[0] == "device_id" and not is_uuid(target["device_id"]):
        errors["target.device_id"] = "must be a UUID"
    elif kinds[0] == "device_ids":
        ids = target["device_ids"]
        if not isinstance(ids, list) or not ids or not all(is_uuid(i) for i in ids):
            errors["target.device_ids"] = "must be a non-empty list of UUIDs"
    elif kinds[0] in ("device_type", "area") and not (isinstance(target[kinds[0]], str) and target[kinds[0]]):
        errors[f"target.{kinds[0]}"] = "must be a non-empty string"
    elif kinds[0] == "all" and target["all"] is not True:
        errors["target.all"] = "must be true"
    return errors


class _Lenient(dict[str, Any]):
    """format_map mapping that leaves unknown placeholders as they are."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``{device}``, ``{key}``, ``{value}``, ``{threshold}``... in ``template``; unknown names stay."""
    shown = {k: (_fmt(v) if isinstance(v, float) else v) for k, v in values.items()}
    try:
        return string.Formatter().vformat(template, (), _Lenient(shown))
    except (ValueError, IndexError):
        return template


def _fmt(value: float) -> str:
    return f"{value:.6g}"
