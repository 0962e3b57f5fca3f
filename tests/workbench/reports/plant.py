"""A small plant with known telemetry and alerts for report tests: three devices, one day of data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from workbench.db.tables import alerts, devices, rules, telemetry

DAY = datetime(2026, 3, 2, tzinfo=UTC)
START = DAY.isoformat()
END = (DAY + timedelta(days=1)).isoformat()
GAP = (DAY + timedelta(hours=10), DAY + timedelta(hours=10, minutes=30))


@dataclass
class Plant:
    """What was seeded: device names by role, ids, and the expected counts."""

    tag: str
    names: dict[str, str] = field(default_factory=dict)
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    readings: dict[str, int] = field(default_factory=dict)
    alert_count: dict[str, int] = field(default_factory=dict)
    area: str = ""

    @property
    def device_names(self) -> list[str]:
        """Every seeded device name."""
        return list(self.names.values())

    def parameters(self, **extra: object) -> dict[str, object]:
        """Report parameters covering the seeded day and devices."""
        return {"start": START, "end": END, "timezone": "Europe/Paris", "devices": self.device_names, **extra}


def seed_plant(engine: Engine) -> Plant:
    """Insert the plant (unique names and area, so it coexists with other tests' data)."""
    tag = uuid.uuid4().hex[:6]
    plant = Plant(tag=tag, area=f"north-{tag}")
    rows = []
    for role, kind, area in (
        ("press", "press", plant.area),
        ("pump", "pump", plant.area),
        ("oven", "oven", "south"),
    ):
        plant.names[role] = f"{role}-{tag}"
        plant.ids[role] = uuid.uuid4()
        rows.append({"id": plant.ids[role], "name": plant.names[role], "type": kind, "area": area,
                     "status": "offline" if role == "oven" else "online"})  # fmt: skip
    points = []
    for minute in range(0, 24 * 60):
        at = DAY + timedelta(minutes=minute)
        if not GAP[0] < at < GAP[1]:
            points.append((at, plant.ids["press"], "temperature", 60 + (minute % 60) / 6, "C", 100))
        points.append((at, plant.ids["press"], "pressure", 2.0 + (minute % 10) / 10, "bar", 100))
        if minute % 2 == 0:
            quality = 40 if minute % 20 == 0 else 100
            points.append((at, plant.ids["pump"], "flow", 10.0 + (minute % 7), "m3/h", quality))
    plant.readings = {
        "press": sum(1 for p in points if p[1] == plant.ids["press"]),
        "pump": sum(1 for p in points if p[1] == plant.ids["pump"]),
        "oven": 0,
    }
    with engine.begin() as conn:
        conn.execute(insert(devices), rows)
        conn.execute(
            insert(telemetry),
            [{"timestamp": t, "device_id": d, "key": k, "value": v, "unit": u, "quality": q}
             for t, d, k, v, u, q in points],
        )  # fmt: skip
        hot = conn.execute(insert(rules).values(name=f"High temperature {tag}", condition={}, action={})
                           .returning(rules.c.id)).scalar_one()  # fmt: skip
        low = conn.execute(insert(rules).values(name=f"Low flow {tag}", condition={}, action={})
                           .returning(rules.c.id)).scalar_one()  # fmt: skip
        alert_rows = []
        for n in range(5):
            at = DAY + timedelta(hours=2 * n + 1)
            alert_rows.append({"device_id": plant.ids["press"], "rule_id": hot, "severity": "critical",
                               "message": "too hot", "key": "temperature", "value": 70.0, "threshold": 68.0,
                               "status": "resolved" if n < 4 else "active", "triggered_at": at,
                               "acknowledged_at": at + timedelta(minutes=5) if n < 4 else None,
                               "resolved_at": at + timedelta(minutes=30) if n < 4 else None})  # fmt: skip
        for n in range(2):
            at = DAY + timedelta(hours=3 * n + 4)
            alert_rows.append({"device_id": plant.ids["pump"], "rule_id": low, "severity": "warning",
                               "message": "low flow", "key": "flow", "value": 9.0, "threshold": 10.0,
                               "status": "resolved", "triggered_at": at,
                               "acknowledged_at": at + timedelta(minutes=10),
                               "resolved_at": at + timedelta(minutes=60)})  # fmt: skip
        conn.execute(insert(alerts), alert_rows)
    plant.alert_count = {"press": 5, "pump": 2, "oven": 0}
    return plant


def read_table(sheet: Any, title: str, column: int = 1) -> list[dict[str, Any]]:
    """The rows of the table titled ``title`` in an openpyxl sheet, as dicts keyed by header."""
    rows = list(sheet.iter_rows(values_only=True))
    for index, row in enumerate(rows):
        if len(row) >= column and row[column - 1] == title:
            header = []
            for name in rows[index + 1][column - 1 :]:
                if name is None:
                    break
                header.append(name)
            found = []
            for values in rows[index + 2 :]:
                cells = values[column - 1 : column - 1 + len(header)]
                if all(cell is None for cell in cells):
                    break
                found.append(dict(zip(header, cells, strict=True)))
            return found
    raise AssertionError(f"no table {title!r} in sheet {sheet.title!r}")
