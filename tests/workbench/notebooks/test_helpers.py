"""The helper library notebooks import, called in-process against the session database."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tests.workbench.notebooks.fixtures import FLOW, SkabPump
from workbench.notebooks import helpers as api


@pytest.fixture(autouse=True)
def platform_database(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv(api.DATABASE_ENV, database_url)  # what the runner and `workbench lab` inject


def test_telemetry_is_one_column_per_key_in_utc(skab_pump: SkabPump) -> None:
    keys = [FLOW, "Pressure"]
    frame = api.telemetry(skab_pump.name, keys, skab_pump.baseline_start, skab_pump.start)
    assert list(frame.columns) == keys and len(frame) == 400
    assert str(frame.index.tz) == "UTC" and frame.index.is_monotonic_increasing
    expected = skab_pump.frame[keys].iloc[:400]
    np.testing.assert_allclose(frame.to_numpy(), expected.to_numpy())
    assert (frame.index == expected.index).all()
    everything = api.telemetry(str(skab_pump.id))
    assert len(everything) == len(skab_pump.frame) and len(everything.columns) == 8


def test_long_format_and_empty_ranges(skab_pump: SkabPump) -> None:
    long = api.telemetry(
        skab_pump.id, FLOW, skab_pump.start, skab_pump.start + pd.Timedelta(seconds=10), wide=False
    )
    assert list(long.columns) == ["timestamp", "key", "value", "quality"] and len(long) == 10
    assert set(long["key"]) == {FLOW}
    empty = api.telemetry(skab_pump.id, [FLOW], "2001-01-01", "2001-01-02")
    assert empty.empty and list(empty.columns) == [FLOW]
    with pytest.raises(LookupError, match="no device named"):
        api.telemetry("no-such-device")


def test_dask_telemetry_partitions_by_time(skab_pump: SkabPump) -> None:
    lazy = api.dask_telemetry(
        skab_pump.name, [FLOW], skab_pump.baseline_start, skab_pump.end, partition="5min"
    )
    assert lazy.npartitions >= 4
    computed = lazy.compute(scheduler="sync")
    direct = api.telemetry(skab_pump.name, [FLOW], skab_pump.baseline_start, skab_pump.end)
    pd.testing.assert_frame_equal(computed, direct, check_freq=False)


def test_windows_default_to_the_last_window_after_a_baseline() -> None:
    w = api.windows(end="2026-01-05T10:00:00Z", window="15min", baseline="2h")
    assert w.start == dt.datetime(2026, 1, 5, 9, 45, tzinfo=dt.UTC)
    assert (w.baseline_start, w.baseline_end) == (dt.datetime(2026, 1, 5, 7, 45, tzinfo=dt.UTC), w.start)
    fixed = api.windows(
        "2026-01-05T09:00", "2026-01-05T10:00", baseline_start="2026-01-01", baseline_end="2026-01-02"
    )
    assert fixed.baseline_end == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


def test_alerts_and_records_are_collected_as_json() -> None:
    api._begin({"run_id": "r1", "dry_run": True})
    flags = pd.Series(
        [False, True, True, False, True], index=pd.date_range("2026-01-05", periods=5, freq="s", tz="UTC")
    )
    score = pd.Series([0.0, 4.0, -6.0, 0.0, 5.0], index=flags.index)
    raised = api.alert_episodes(
        flags, score, severity="critical", key="flow", message="{key} {value:.0f}", min_length=2
    )
    api.record("table", pd.DataFrame({"a": [1, 2]}))
    api.record("scalar", np.float64("nan"))
    alerts, records = api.collected()
    assert raised == 1 and alerts[0]["message"] == "flow -6" and alerts[0]["value"] == -6.0
    assert alerts[0]["at"] == "2026-01-05T00:00:01+00:00" and alerts[0]["end"] == "2026-01-05T00:00:02+00:00"
    assert records == {"table": [{"index": 0, "a": 1}, {"index": 1, "a": 2}], "scalar": None}
    assert api.context() == {"run_id": "r1", "dry_run": True}
    with pytest.raises(ValueError, match="severity"):
        api.alert("urgent", "nope")


def test_the_former_name_is_the_same_module() -> None:
    from workbench.notebooks import api as former
    from workbench.notebooks import helpers

    assert former is helpers  # one _state and connection, whichever name a notebook imports


def test_save_rule_writes_a_valid_notebook_rule_and_refuses_an_invalid_one(skab_pump: SkabPump) -> None:
    from sqlalchemy import select

    from workbench.db.engine import make_engine
    from workbench.db.tables import rules

    ident = api.save_rule("pca on pump", "rules/pca_t2_q.ipynb", {"margin": 1.5}, skab_pump.name, [FLOW])
    with pytest.raises(ValueError, match=r"condition\.notebook"):
        api.save_rule("nothing", "rules/no_such_rule.ipynb", {}, skab_pump.name, [FLOW])
    engine = make_engine(api.database_url(), pool_size=1)
    with engine.connect() as conn:
        row = conn.execute(select(rules).where(rules.c.id == ident)).mappings().one()
        refused = conn.execute(select(rules.c.id).where(rules.c.name == "nothing")).all()
    engine.dispose()
    assert row["type"] == "notebook" and row["enabled"] is False and row["device_id"] == skab_pump.id
    assert row["condition"]["parameters"] == {"margin": 1.5} and row["condition"]["keys"] == [FLOW]
    assert row["action"] == {"type": "alert", "severity": "warning"}
    assert refused == []


def test_reads_go_to_the_replica_unless_the_run_needs_the_primary(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    replica = "postgresql://reader@replica.example:5432/workbench"
    try:
        assert api.read_url() == database_url  # no replica in the environment: the primary
        monkeypatch.setenv(api.READ_DATABASE_ENV, replica)
        api._begin({"run_id": "lab"})  # no word from the runner (the lab): reads may lag
        assert api.read_url() == replica
        api._begin({"run_id": "live", api.REPLICA_READS: False})  # a live rule sees the newest points
        assert api.read_url() == database_url
        api.use_read_database("postgresql://kit@elsewhere/db")  # a report kit's own database wins
        assert api.read_url() == "postgresql://kit@elsewhere/db"
        api._begin({"run_id": "next", api.REPLICA_READS: True})  # ...for its run only
        assert api.read_url() == replica
    finally:
        api._begin({})
