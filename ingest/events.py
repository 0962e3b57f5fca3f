"""Turning committed rows and status changes into the bus events of ``workbench.live.events``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from ingest.validation import Row
from workbench.live.bus import DEVICE_STATUS, TELEMETRY_BATCH, EventBus
from workbench.live.events import BATCH_COLUMNS, DeviceStatus, TelemetryBatch

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def batch_frame(rows: list[Row]) -> pd.DataFrame:
    """The TelemetryBatch frame (columns of BATCH_COLUMNS) for committed rows."""
    stamps, _, keys, values, units, qualities, _, _, devices = zip(*rows, strict=True)
    # Epoch microseconds through numpy is far cheaper than pandas parsing datetime objects one by one.
    # Rows share timestamp objects (one per message, or the receipt time): convert each object once.
    seen: dict[int, int] = {}
    for stamp in stamps:
        if id(stamp) not in seen:
            seen[id(stamp)] = (stamp - EPOCH) // MICROSECOND
    micros = np.array([seen[id(stamp)] for stamp in stamps], dtype="int64")
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(micros, unit="us", utc=True).astype("datetime64[ns, UTC]"),
            "device_id": pd.Series(devices, dtype=object),
            "key": pd.Series(keys, dtype=object),
            "value": np.array(values, dtype="float64"),
            "unit": pd.Series(units, dtype=object),
            "quality": np.array(qualities, dtype="int64"),
        },
        columns=list(BATCH_COLUMNS),
    )
    return frame


def publish_batch(bus: EventBus, rows: list[Row], source: str, committed_at: datetime) -> None:
    """Publish committed rows as one TelemetryBatch."""
    if rows:
        bus.publish(TELEMETRY_BATCH, TelemetryBatch(batch_frame(rows), source, committed_at))


def publish_status(bus: EventBus, device_id: str, status: str, at: datetime) -> None:
    """Publish a device status change."""
    bus.publish(DEVICE_STATUS, DeviceStatus(device_id, status, at))
