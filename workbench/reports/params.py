"""Report parameters: validation, and relative windows (``today-1d``) resolved at run time."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from workbench.notebooks import parameters as notebook_parameters
from workbench.notebooks.parameters import ParameterError

# Set by the platform for every run; a caller may not choose them.
RESERVED = ("database_url", "report_dir")
DEFAULT_WINDOW = {"start": "today-1d", "end": "today"}
_RELATIVE = re.compile(r"^(now|today)\s*(?:([+-])\s*(\d+)\s*([mhdw]))?$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


__all__ = ["DEFAULT_WINDOW", "RESERVED", "ParameterError", "check", "resolve", "resolve_time"]


def check(parameters: dict[str, Any], notebook: Path) -> dict[str, Any]:
    """The parameters as JSON data if each is one ``notebook`` declares, of its type, and not reserved
    (:func:`workbench.notebooks.parameters.check`), with a valid window, timezone and device list."""
    if not isinstance(parameters, dict):
        raise ParameterError("parameters must be an object")
    parameters = notebook_parameters.check(notebook, parameters, reserved=RESERVED)
    zone = parameters.get("timezone", "UTC")
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ParameterError(f"timezone {zone!r} is not an IANA timezone") from None
    for name in ("start", "end"):
        if name in parameters:
            resolve_time(str(parameters[name]), datetime.now(ZoneInfo("UTC")), ZoneInfo(str(zone)), name)
    devices = parameters.get("devices", [])
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise ParameterError("devices must be a list of device names or ids")
    return parameters


def resolve(parameters: dict[str, Any], reference: datetime) -> dict[str, Any]:
    """The parameters with the window made absolute (ISO 8601) against ``reference``."""
    zone = ZoneInfo(str(parameters.get("timezone", "UTC")))
    resolved = {**DEFAULT_WINDOW, **parameters}
    for name in ("start", "end"):
        resolved[name] = resolve_time(str(resolved[name]), reference, zone, name)
    resolved.setdefault("timezone", str(zone))
    return resolved


def resolve_time(value: str, reference: datetime, zone: ZoneInfo, name: str = "time") -> str:
    """``now``, ``today`` (local midnight) with an optional ``±N[mhdw]`` offset, or an ISO 8601 instant."""
    match = _RELATIVE.match(value.strip().lower())
    if match:
        base = pd.Timestamp(reference).tz_convert(zone)
        if match.group(1) == "today":
            base = base.normalize()
        if match.group(2):
            offset = pd.DateOffset(**{_UNITS[match.group(4)]: int(match.group(3))})
            base = base + offset if match.group(2) == "+" else base - offset
        return str(base.isoformat())
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(f"{name} {value!r} is neither ISO 8601 nor now/today[±N(m|h|d|w)]") from None
    return parsed.isoformat()
