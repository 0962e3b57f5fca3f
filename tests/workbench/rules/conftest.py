"""Fixtures of the rule-engine tests: a platform on the session database, devices, rules, a running engine."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import insert, select

from workbench.db.engine import make_engine
from workbench.db.tables import alerts, devices, rules
from workbench.live.bus import EventBus
from workbench.live.events import TelemetryBatch
from workbench.platform import Platform
from workbench.rules.engine import RuleEngine
from workbench.settings import Settings

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def rules_platform(settings: Settings) -> Iterator[Platform]:
    """A platform (engine, bus) of its own on the session database: no MQTT unless a test adds one."""
    platform = Platform(settings=settings, engine=make_engine(settings.database_url or "", 5), bus=EventBus())
    yield platform
    platform.engine.dispose()


@pytest.fixture
def make_devices(rules_platform: Platform) -> Callable[..., list[str]]:
    """``make_devices(n, type=..., area=...)``: insert devices, return their ids."""

    def build(n: int = 1, type: str = "pump", area: str | None = None) -> list[str]:
        tag = uuid.uuid4().hex[:6]
        with rules_platform.engine.begin() as conn:
            rows = conn.execute(
                insert(devices).returning(devices.c.id),
                [{"name": f"dev-{tag}-{i}", "type": type, "area": area} for i in range(n)],
            )
            return [str(r.id) for r in rows]

    return build


@pytest.fixture
def make_rule(rules_platform: Platform) -> Callable[..., str]:
    """``make_rule(type, condition, target=..., action=..., **columns)``: insert an enabled rule."""

    def build(kind: str, condition: dict[str, Any], **columns: Any) -> str:
        values = {
            "name": f"rule-{uuid.uuid4().hex[:6]}",
            "type": kind,
            "condition": condition,
            "action": columns.pop("action", {"type": "alert", "severity": "warning"}),
            "cooldown_seconds": columns.pop("cooldown_seconds", 0),
            **columns,
        }
        with rules_platform.engine.begin() as conn:
            return str(conn.execute(insert(rules).values(**values).returning(rules.c.id)).scalar_one())

    return build


@pytest.fixture
def start_engine(rules_platform: Platform) -> Iterator[Callable[[], RuleEngine]]:
    """``start_engine()``: a started RuleEngine (stopped at teardown); call again to 'restart'."""
    started: list[RuleEngine] = []

    def build() -> RuleEngine:
        engine = RuleEngine(rules_platform, reload_seconds=0.2, tick_seconds=3600).start()
        started.append(engine)
        return engine

    yield build
    for engine in started:
        engine.stop()


def frame(points: list[tuple[float, str, str, float]], base: datetime = T0) -> pd.DataFrame:
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


def publish(platform: Platform, points: list[tuple[float, str, str, float]], base: datetime = T0) -> None:
    """Publish points on the bus as a committed batch (unit-level tests only)."""
    platform.bus.publish("telemetry.batch", TelemetryBatch(frame(points, base), "test", datetime.now(UTC)))


def alerts_of(platform: Platform, rule_id: str) -> list[dict[str, Any]]:
    """Every alert of a rule, oldest first."""
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(alerts).where(alerts.c.rule_id == uuid.UUID(rule_id)).order_by(alerts.c.triggered_at)
        )
        return [dict(r) for r in rows.mappings()]
