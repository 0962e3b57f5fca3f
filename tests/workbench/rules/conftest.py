"""Fixtures of the rule-engine tests: a platform on the session database and ``rig``, which makes devices,
rules, stored telemetry and alert rows, starts engines (stopped at teardown) and evaluates points."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import insert, select

from workbench.db.engine import make_engine
from workbench.db.tables import alerts, devices, rules, telemetry
from workbench.live.bus import EventBus
from workbench.live.events import TelemetryBatch
from workbench.platform import Platform
from workbench.rules.engine import RuleEngine
from workbench.settings import Settings

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
Point = tuple[float, str, str, float]  # (seconds after the base time, device id, key, value)


@pytest.fixture(scope="session")
def rules_platform(settings: Settings) -> Iterator[Platform]:
    """A platform (engine, bus) of its own on the session database: no MQTT unless a test adds one.

    Its webhooks may reach loopback, where the tests' receivers listen (test_webhook_targets.py checks
    the default, which refuses it).
    """
    settings = replace(settings, webhook_allowed_networks="127.0.0.0/8")
    platform = Platform(settings=settings, engine=make_engine(settings.database_url or "", 5), bus=EventBus())
    yield platform
    platform.engine.dispose()


@dataclass
class Rig:
    """What a rule test sets up, in one place: devices, rules, telemetry, alerts, running engines."""

    platform: Platform
    engines: list[RuleEngine] = field(default_factory=list)

    def devices(self, n: int = 1, type: str = "pump", area: str | None = None) -> list[str]:
        """Insert ``n`` devices; their ids."""
        tag = uuid.uuid4().hex[:6]
        with self.platform.engine.begin() as conn:
            rows = conn.execute(
                insert(devices).returning(devices.c.id),
                [{"name": f"dev-{tag}-{i}", "type": type, "area": area} for i in range(n)],
            )
            return [str(r.id) for r in rows]

    def rule(self, kind: str, condition: dict[str, Any], **columns: Any) -> str:
        """Insert an enabled rule (alert action, no cooldown unless given); its id."""
        values = {
            "name": f"rule-{uuid.uuid4().hex[:6]}",
            "type": kind,
            "condition": condition,
            "action": columns.pop("action", {"type": "alert", "severity": "warning"}),
            "cooldown_seconds": columns.pop("cooldown_seconds", 0),
            **columns,
        }
        with self.platform.engine.begin() as conn:
            return str(conn.execute(insert(rules).values(**values).returning(rules.c.id)).scalar_one())

    def store(self, device: str, key: str, series: list[tuple[float, float]], base: datetime = T0) -> None:
        """Write (seconds after base, value) points of one device and key straight to telemetry."""
        with self.platform.engine.begin() as conn:
            conn.execute(
                insert(telemetry),
                [
                    {
                        "timestamp": base + timedelta(seconds=s),
                        "device_id": uuid.UUID(device),
                        "key": key,
                        "value": v,
                    }
                    for s, v in series
                ],
            )

    def alert(self, rule: str, device: str, **columns: Any) -> str:
        """Insert an active alert row of a rule and device; its id."""
        values = {"severity": "warning", "message": "m", "status": "active", "triggered_at": T0, **columns}
        row = insert(alerts).values(rule_id=uuid.UUID(rule), device_id=uuid.UUID(device), **values)
        with self.platform.engine.begin() as conn:
            return str(conn.execute(row.returning(alerts.c.id)).scalar_one())

    def start(self, platform: Platform | None = None, **options: Any) -> RuleEngine:
        """A started RuleEngine (stopped at teardown); call again to 'restart'."""
        options = {"reload_seconds": 0.2, "tick_seconds": 3600, **options}
        engine = RuleEngine(platform or self.platform, **options).start()
        self.engines.append(engine)
        return engine

    def evaluate(self, engine: RuleEngine, points: list[Point], base: datetime = T0) -> None:
        """Evaluate points as one committed frame, then wait for the history loads and actions it started."""
        engine.evaluate(frame(points, base))
        assert engine.idle()

    def alerts(self, rule: str) -> list[dict[str, Any]]:
        """Every alert of a rule, oldest first."""
        return alerts_of(self.platform, rule)


@pytest.fixture
def rig(rules_platform: Platform) -> Iterator[Rig]:
    """A Rig on the rules platform; its engines are stopped at teardown."""
    made = Rig(rules_platform)
    yield made
    for engine in made.engines:
        engine.stop()


def frame(points: list[Point], base: datetime = T0) -> pd.DataFrame:
    """A TelemetryBatch frame from (seconds after base, device, key, value) tuples."""
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([base + timedelta(seconds=s) for s, *_ in points], utc=True),
            "device_id": [p[1] for p in points],
            "key": [p[2] for p in points],
            "value": [float(p[3]) for p in points],
            "unit": None,
            "quality": 100,
        }
    )


def publish(platform: Platform, points: list[Point], base: datetime = T0) -> None:
    """Publish points on the bus as a committed batch (unit-level tests only)."""
    platform.bus.publish("telemetry.batch", TelemetryBatch(frame(points, base), "test", datetime.now(UTC)))


def alerts_of(platform: Platform, rule_id: str) -> list[dict[str, Any]]:
    """Every alert of a rule, oldest first."""
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(alerts).where(alerts.c.rule_id == uuid.UUID(rule_id)).order_by(alerts.c.triggered_at)
        )
        return [dict(r) for r in rows.mappings()]
