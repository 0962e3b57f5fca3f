"""Payloads published on the event bus, one type per topic of ``workbench.live.bus``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

# Columns of TelemetryBatch.frame, in order.
BATCH_COLUMNS = ("timestamp", "device_id", "key", "value", "unit", "quality")


@dataclass(frozen=True)
class TelemetryBatch:
    """Points just committed to PostgreSQL (topic ``telemetry.batch``).

    ``frame`` has the columns of BATCH_COLUMNS: timestamp (datetime64[ns, UTC]), device_id (str),
    key (str), value (float64; NaN for text points), unit (str or None), quality (int).
    """

    frame: pd.DataFrame
    source: str
    committed_at: datetime


@dataclass(frozen=True)
class DeviceStatus:
    """A device went online, offline or into error (topic ``device.status``)."""

    device_id: str
    status: str
    timestamp: datetime
