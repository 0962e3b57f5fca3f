"""Injectable faults: what each does to the true process or to its sensors, growing from a start time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = ("bearing_wear", "cavitation", "valve_closing", "sensor_drift", "stuck_sensor", "dropout")
# Faults that change the process itself; the others only change what a sensor reports.
PROCESS_FAULTS = {"bearing_wear", "cavitation", "valve_closing"}


@dataclass
class Fault:
    """A fault on ``device`` (and ``key`` for sensor faults) active from ``start_s`` of simulated time.

    ``severity`` scales it: bearing wear adds up to ``severity`` x 8 mm/s of vibration over ``ramp_s``;
    cavitation removes ``severity`` x 35 % of flow; valve closing shuts the valve to ``1 - severity``;
    sensor drift adds ``severity`` x 10 % of the reading per hour; a stuck sensor repeats its last value;
    dropout drops ``severity`` of the samples (1.0: all).
    """

    kind: str
    device: str
    key: str | None = None
    start_s: float = 0.0
    severity: float = 1.0
    ramp_s: float = 600.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {', '.join(KINDS)}")
        if self.kind in ("sensor_drift", "stuck_sensor") and not self.key:
            raise ValueError(f"fault {self.kind} needs the sensor key (device:{self.kind}:key)")

    def progress(self, t: float) -> float:
        """0 before the start, rising to 1 over ``ramp_s`` (faults grow, they do not switch on)."""
        if t < self.start_s:
            return 0.0
        if self.ramp_s <= 0:
            return 1.0
        return min(1.0, (t - self.start_s) / self.ramp_s)

    def active(self, t: float) -> bool:
        """Whether the fault has started at simulated time ``t``."""
        return t >= self.start_s

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``device:kind[:key][@start_s][*severity]``, e.g. ``pump-1:bearing_wear@60`` or
        ``pump-2:sensor_drift:pressure@30*2``."""
        severity = 1.0
        start = 0.0
        if "*" in spec:
            spec, sev = spec.rsplit("*", 1)
            severity = float(sev)
        if "@" in spec:
            spec, at = spec.rsplit("@", 1)
            start = float(at)
        parts = spec.split(":")
        if len(parts) < 2:
            raise ValueError(f"fault {spec!r}: expected device:kind[:key][@start_s][*severity]")
        return cls(
            kind=parts[1],
            device=parts[0],
            key=parts[2] if len(parts) > 2 else None,
            start_s=start,
            severity=severity,
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Fault:
        """A fault from a plant config entry."""
        return cls(
            kind=str(raw["kind"]),
            device=str(raw["device"]),
            key=raw.get("key"),
            start_s=float(raw.get("start_s", 0.0)),
            severity=float(raw.get("severity", 1.0)),
            ramp_s=float(raw.get("ramp_s", 600.0)),
        )
