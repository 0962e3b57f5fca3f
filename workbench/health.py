"""Component health: each part of the platform registers a check; ``/healthz`` runs them all."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Check = Callable[[], dict[str, Any] | None]


@dataclass
class HealthRegistry:
    """Named checks; a check returns details when up and raises when down."""

    checks: dict[str, Check] = field(default_factory=dict)

    def register(self, name: str, check: Check) -> None:
        """Add or replace the check called ``name``."""
        self.checks[name] = check

    def report(self) -> tuple[bool, dict[str, Any]]:
        """Run every check; return (all up, per-component state)."""
        components: dict[str, Any] = {}
        healthy = True
        for name, check in sorted(self.checks.items()):
            started = time.perf_counter()
            try:
                details = check() or {}
                state: dict[str, Any] = {"status": "up", **details}
            except Exception as error:  # a check's failure is the report, not a crash
                healthy = False
                state = {"status": "down", "error": str(error) or type(error).__name__}
            state["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            components[name] = state
        return healthy, components
