"""The shapes that cross the ingest pipeline: raw readings in, validated points out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class Reading:
    """One value as a protocol delivered it, before validation (any field may be wrong)."""

    device_id: Any
    key: Any
    value: Any
    timestamp: Any = None
    unit: Any = None
    quality: Any = None
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class Point:
    """One validated telemetry point, ready for the batch writer."""

    timestamp: datetime
    device_id: uuid.UUID
    key: str
    value: float | None
    unit: str | None = None
    quality: int = 100
    text_value: str | None = None
    metadata: dict[str, Any] | None = field(default=None)
