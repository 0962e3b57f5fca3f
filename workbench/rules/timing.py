"""Where the rule engine's latency goes: wall-clock marks of every evaluated frame, by stage.

A frame is what one evaluation consumes: the batches queued since the previous one. Its marks follow the
*oldest* batch in it (the one that waited longest), from the ingest commit to the actions being queued:

==========  ========================================================================================
bus         commit of the points -> the bus handed the batch to the engine (writer thread, frame build)
queue       -> the evaluation thread took it (waiting behind the previous evaluation)
coalesce    -> the evaluation began (the minimum interval between evaluations, merging the batches)
evaluate    -> every rule evaluated and the alert decisions made
write       -> the alert rows (inserts and auto-resolves) committed
dispatch    -> the new alerts' actions queued on the action worker (the alert action then publishes)
==========  ========================================================================================

``commit_to_alert`` (commit -> alert rows committed) is the latency the benchmark reports per alert.
Marks are ``time.time()`` seconds, comparable with the writer's commit callbacks in the same process.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STAGES = ("bus", "queue", "coalesce", "evaluate", "write", "dispatch")


@dataclass
class FrameTiming:
    """Wall-clock marks of one evaluated frame (see the module docstring for the stages)."""

    committed: float
    received: float
    taken: float
    started: float = 0.0
    evaluated: float = 0.0
    written: float = 0.0
    dispatched: float = 0.0
    batches: int = 0
    points: int = 0
    cpu: float = 0.0  # CPU seconds of the evaluation thread for this frame (load-independent cost)
    alerts: list[str] = field(default_factory=list)  # ids of the alerts this frame created

    def stages(self) -> dict[str, float]:
        """Seconds spent in each stage (0 for a stage the frame did not need, e.g. no alert to write)."""
        written = self.written or self.evaluated
        dispatched = self.dispatched or written
        marks = (self.committed, self.received, self.taken, self.started, self.evaluated, written, dispatched)
        return {name: max(0.0, marks[i + 1] - marks[i]) for i, name in enumerate(STAGES)}


class StageLog:
    """The latest frames' timings (bounded), summarised as percentiles per stage."""

    def __init__(self, size: int = 2000) -> None:
        self.frames: deque[FrameTiming] = deque(maxlen=size)

    def add(self, timing: FrameTiming) -> None:
        """Record one evaluated frame."""
        self.frames.append(timing)

    def alert_commits(self) -> dict[str, float]:
        """When each recent alert's row was committed (alert id -> ``time.time()``)."""
        return {alert: f.written for f in list(self.frames) for alert in f.alerts}

    def summary(self, only_alerting: bool = False) -> dict[str, Any]:
        """p50/p99/max milliseconds per stage over the recorded frames (or those that raised alerts)."""
        frames = [f for f in list(self.frames) if f.alerts or not only_alerting]
        out: dict[str, Any] = {"frames": len(frames)}
        if not frames:
            return out
        table = np.array([list(f.stages().values()) for f in frames]) * 1000
        for i, name in enumerate(STAGES):
            column = table[:, i]
            out[name] = {
                "p50": round(float(np.percentile(column, 50)), 1),
                "p99": round(float(np.percentile(column, 99)), 1),
                "max": round(float(column.max()), 1),
            }
        return out
