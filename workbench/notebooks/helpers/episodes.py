"""Turning a notebook's scores into alerts: flagged runs (episodes), baseline/monitoring windows, limits."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from workbench.notebooks.helpers.data import timestamp
from workbench.notebooks.helpers.outputs import alert


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


def alert_episodes(
    flags: pd.Series,
    score: pd.Series,
    *,
    severity: str,
    message: str,
    device: str | uuid.UUID | None = None,
    key: str | None = None,
    threshold: float | None = None,
    min_length: int = 1,
) -> int:
    """One alert per run of consecutive flagged samples: ``at`` its first sample, ``end`` its last,
    ``value`` the most extreme ``score`` in it. ``message`` may use ``{key}``, ``{value}``, ``{threshold}``,
    ``{start}`` and ``{end}``. A run that reaches the last sample is ``ongoing`` (metadata): the platform
    keeps its alert open instead of resolving it at ``end``. Returns how many alerts were raised."""
    count = 0
    # Positional slices of numpy arrays: a rule may raise dozens of alerts per run, and label slicing of
    # a DatetimeIndex costs a few hundred microseconds each time.
    aligned = score if score.index.equals(flags.index) else score.reindex(flags.index)
    scores = aligned.to_numpy(dtype=float, na_value=np.nan)
    for a, b in _runs(flags, min_length):
        first, last = flags.index[a], flags.index[b - 1]
        part = scores[a:b][~np.isnan(scores[a:b])]
        value = float(part[np.argmax(np.abs(part))]) if len(part) else None
        ongoing = b == len(flags)
        text = message.format(key=key, value=value, threshold=threshold, start=first, end=last)
        alert(
            severity,
            text,
            value=value,
            at=first,
            device=device,
            key=key,
            end=last,
            threshold=threshold,
            samples=b - a,
            ongoing=bool(ongoing),
        )
        count += 1
    return count
