"""Signal helpers of the notebook API: runs of flagged samples, rule windows, limit crossings.

Pure functions on pandas data (no database, no run state); :mod:`workbench.notebooks.helpers` exports them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import numpy as np
import pandas as pd


def timestamp(value: Any) -> dt.datetime | None:
    """A timezone-aware UTC datetime from an ISO string, datetime or pandas Timestamp (naive means UTC)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    result: dt.datetime = stamp.to_pydatetime()
    return result


def episodes(flags: pd.Series, min_length: int = 1) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The (first, last) timestamps of each run of consecutive true flags at least ``min_length`` long."""
    return [(flags.index[a], flags.index[b - 1]) for a, b in _runs(flags, min_length)]


def _runs(flags: pd.Series, min_length: int) -> list[tuple[int, int]]:
    """Positions ``[a, b)`` of each run of consecutive true flags at least ``min_length`` long."""
    values = flags.fillna(False).astype(bool).to_numpy()
    edges = np.diff(np.concatenate([[0], values.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # stop is one past the run
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b - a >= min_length]


class Windows(NamedTuple):
    """The baseline (training) and monitoring windows of a rule evaluation, UTC, half-open."""

    baseline_start: dt.datetime
    baseline_end: dt.datetime
    start: dt.datetime
    end: dt.datetime


def windows(
    start: Any = None,
    end: Any = None,
    window: str = "1h",
    baseline_start: Any = None,
    baseline_end: Any = None,
    baseline: str = "24h",
) -> Windows:
    """Resolve a rule's windows: monitoring ``[start, end)`` (defaults: ``end`` now, ``start`` one
    ``window`` earlier) and baseline ``[baseline_start, baseline_end)`` (default: the ``baseline``
    duration right before ``start``)."""
    upper = timestamp(end) or dt.datetime.now(dt.UTC)
    lower = timestamp(start) or upper - pd.Timedelta(window).to_pytimedelta()
    base_end = timestamp(baseline_end) or lower
    base_start = timestamp(baseline_start) or base_end - pd.Timedelta(baseline).to_pytimedelta()
    return Windows(base_start, base_end, lower, upper)


def beyond(deviation: pd.Series, limit: float, side: str = "both") -> pd.Series:
    """Flags where ``deviation`` passes ``limit``: below ``-limit`` (``lower``), above it (``upper``) or
    either (``both``)."""
    if side == "lower":
        return deviation < -limit
    if side == "upper":
        return deviation > limit
    if side == "both":
        return deviation.abs() > limit
    raise ValueError(f"side must be lower, upper or both, got {side!r}")
