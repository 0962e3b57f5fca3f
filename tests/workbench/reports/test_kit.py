"""The notebook-side kit: scope by devices or area, window in the report's timezone, what it hands over."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workbench.reports.plant import Plant
from workbench.reports.kit import ReportKit, load_tables
from workbench.settings import Settings


def _kit(settings: Settings, **kwargs: object) -> ReportKit:
    arguments: dict[str, object] = {"start": "2026-03-02T00:00:00", "end": "2026-03-03T00:00:00"}
    arguments.update(kwargs)
    return ReportKit(str(settings.database_url), **arguments)  # type: ignore[arg-type]


def test_scope_by_area_names_or_ids(settings: Settings, plant: Plant) -> None:
    by_area = _kit(settings, area=plant.area).device_list()
    assert list(by_area["name"]) == [plant.names["press"], plant.names["pump"]]
    by_mix = _kit(settings, devices=[plant.names["oven"], str(plant.ids["pump"])]).device_list()
    assert list(by_mix["name"]) == [plant.names["oven"], plant.names["pump"]]
    nothing = _kit(settings, devices=["no-such-device"])
    assert nothing.device_list().empty and nothing.telemetry().empty and nothing.alerts().empty


def test_window_is_read_in_the_report_timezone(settings: Settings, plant: Plant) -> None:
    # Paris midnight to midnight is 23:00 to 23:00 UTC: the seeded day minus its first hour.
    kit = _kit(settings, devices=plant.device_names, timezone="Europe/Paris")
    data = kit.telemetry(keys=["pressure"])
    assert len(data) == 1440 - 60
    assert str(data["timestamp"].dt.tz) == "Europe/Paris"
    assert data["timestamp"].min().hour == 1 and set(data["unit"]) == {"bar"}
    alerts = kit.alerts()
    assert len(alerts) == 7 and set(alerts["device"]) == {plant.names["press"], plant.names["pump"]}


def test_tables_hand_over_through_the_report_dir(settings: Settings, plant: Plant, tmp_path: Path) -> None:
    kit = _kit(settings, devices=[plant.names["pump"]], report_dir=str(tmp_path), title="Pump check")
    data = kit.telemetry()
    kit.sheet("Summary", data.groupby("key").size().rename("readings").reset_index())
    kit.device_sheet(plant.names["pump"], data, data.groupby("key")["value"].mean().reset_index())
    manifest = kit.finish()
    loaded_manifest, tables = load_tables(tmp_path)
    assert loaded_manifest == manifest and manifest["title"] == "Pump check"
    assert [(t.name, t.device, t.kind) for t in tables] == [
        ("Summary", None, "summary"),
        (f"{plant.names['pump']} raw", plant.names["pump"], "raw"),
        (f"{plant.names['pump']} aggregated", plant.names["pump"], "aggregated"),
    ]
    assert int(tables[0].frame["readings"].iloc[0]) == 720


def test_window_must_move_forward(settings: Settings) -> None:
    with pytest.raises(ValueError, match="must be after start"):
        _kit(settings, start="2026-03-03T00:00:00", end="2026-03-02T00:00:00")


def test_an_empty_window_reads_empty_frames(settings: Settings, plant: Plant) -> None:
    kit = _kit(settings, devices=plant.device_names, start="2020-01-01T00:00:00", end="2020-01-02T00:00:00")
    assert len(kit.device_list()) == 3
    data = kit.telemetry()
    assert data.empty and list(data.columns)[:4] == ["timestamp", "device", "device_id", "key"]
    assert kit.alerts().empty and len(kit.data_hash) == 64
