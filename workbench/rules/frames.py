"""The columns the rule engine reads of committed batches, as numpy arrays.

A frame merges the batches queued since the previous evaluation (tens of them at full ingest rate). The
engine needs four columns of them (device, key, time, value); text points (NaN values) are dropped on the
arrays, not by filtering a copy of the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.rules.store import with_ns


@dataclass
class Columns:
    """Parallel arrays of a frame's points: device ids (str), keys (str), times (int64 ns), values."""

    ids: np.ndarray
    keys: np.ndarray
    ts: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def numeric(self) -> Columns:
        """The points with a numeric value (text points carry NaN)."""
        keep = ~np.isnan(self.values)
        if keep.all():
            return self
        return Columns(self.ids[keep], self.keys[keep], self.ts[keep], self.values[keep])


def columns_of(frames: list[pd.DataFrame]) -> Columns:
    """The columns of batch frames (``TelemetryBatch.frame`` or any frame with those columns), joined."""
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        empty = np.zeros(0, dtype=object)
        return Columns(empty, empty, np.zeros(0, np.int64), np.zeros(0, np.float64))
    # One pandas concat, then four columns out: cheaper than taking each batch's columns one by one.
    return _columns(frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True))


def _columns(frame: pd.DataFrame) -> Columns:
    ids = frame["device_id"].to_numpy(dtype=object)
    if not isinstance(ids[0], str):  # bus frames carry str ids; others (UUIDs) are converted
        ids = frame["device_id"].astype(str).to_numpy(dtype=object)
    return Columns(
        ids,
        frame["key"].to_numpy(dtype=object),
        _nanoseconds(frame["timestamp"]),
        frame["value"].to_numpy(dtype=np.float64),
    )


def _nanoseconds(stamps: pd.Series) -> np.ndarray:
    """Event times as int64 ns since the epoch (bus frames are datetime64[ns, UTC]: no conversion)."""
    if isinstance(stamps.dtype, pd.DatetimeTZDtype) and stamps.dtype.unit == "ns":
        return np.asarray(stamps.array.asi8)
    return np.asarray(with_ns(pd.DataFrame({"timestamp": stamps, "value": 0.0}))["ts"].to_numpy())
