"""The multivariate rule notebooks on a synthetic multi-sensor device: a fault injected in one sensor raises
an alert naming that sensor first, and the same device without the fault stays quiet."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from sqlalchemy import insert

from tests.workbench.notebooks.fixtures import ROOT
from workbench.db.engine import libpq_url, make_engine
from workbench.db.tables import devices
from workbench.notebooks.runner import NotebookRunner, run_notebook_rule

RULES = ["pca_t2_q", "dynamic_pca", "knn_residual"]
SENSORS = [f"s{i}" for i in range(6)]
BASELINE, MONITORED, FAULT_AT = 600, 600, 300  # samples (1 s apart); the fault starts 300 s into monitoring
FAULTY = "s3"
START = pd.Timestamp("2026-01-05T00:00:00Z")


def series(seed: int, fault: bool) -> pd.DataFrame:
    """Six sensors driven by two shared factors plus noise; with ``fault``, s3 leaves the others' pattern."""
    rng = np.random.default_rng(seed)
    total = BASELINE + MONITORED
    mixing = np.array([[1.0, 0.8, 0.6, -0.5, 0.9, 0.4], [0.2, -0.7, 1.0, 0.9, 0.6, -1.0]])
    values = (
        rng.standard_normal((total, 2)) @ mixing + 0.3 * rng.standard_normal((total, len(SENSORS))) + 10.0
    )
    if fault:
        values[BASELINE + FAULT_AT :, SENSORS.index(FAULTY)] += 2.0
    index = pd.date_range(START, periods=total, freq="1s")
    return pd.DataFrame(values, index=index, columns=SENSORS)


def write_device(database_url: str, frame: pd.DataFrame) -> str:
    """A device holding the frame's sensors (binary COPY into telemetry); returns its name."""
    name = f"synthetic-{uuid.uuid4().hex[:6]}"
    engine = make_engine(database_url, pool_size=1)
    with engine.begin() as conn:
        ident = conn.execute(
            insert(devices).values(name=name, type="skid").returning(devices.c.id)
        ).scalar_one()
    engine.dispose()
    statement = "COPY telemetry (timestamp, device_id, key, value) FROM STDIN (FORMAT BINARY)"
    with psycopg.connect(libpq_url(database_url)) as conn, conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(["timestamptz", "uuid", "varchar", "float8"])
        for stamp, row in frame.iterrows():
            for key, value in row.items():
                copy.write_row((stamp.to_pydatetime(), ident, key, float(value)))
    return name


@pytest.fixture(scope="module")
def faulty_device(database_url: str) -> str:
    return write_device(database_url, series(1, fault=True))


@pytest.fixture(scope="module")
def quiet_device(database_url: str) -> str:
    return write_device(database_url, series(2, fault=False))


def backtest(runner: NotebookRunner, rule: str, device: str):  # type: ignore[no-untyped-def]
    start = START + pd.Timedelta(seconds=BASELINE)
    end = START + pd.Timedelta(seconds=BASELINE + MONITORED)
    parameters = {"baseline_start": START.isoformat(), "baseline_end": start.isoformat(), "plot": True}
    return run_notebook_rule(runner, f"rules/{rule}.ipynb", parameters, device, start, end, dry_run=True)


def samples(alert) -> int:  # type: ignore[no-untyped-def]
    return int(alert.metadata["samples"])


@pytest.mark.parametrize("rule", RULES)
def test_injected_fault_alerts_and_names_the_sensor(
    rule: str, notebook_runner: NotebookRunner, faulty_device: str
) -> None:
    assert (ROOT / "rules" / f"{rule}.ipynb").is_file()
    result = backtest(notebook_runner, rule, faulty_device)
    assert result.ok, result.error
    assert result.alerts, result.records
    fault_start = START + pd.Timedelta(seconds=BASELINE + FAULT_AT)
    alert = max(result.alerts, key=samples)
    assert fault_start <= pd.Timestamp(alert.at) <= fault_start + pd.Timedelta(seconds=60)
    assert samples(alert) > 0.8 * (MONITORED - FAULT_AT)
    contributors = alert.metadata["contributors"]
    assert len(contributors) == 3 and contributors[0]["key"] == FAULTY, contributors
    assert f"top contributors: {FAULTY}" in alert.message
    assert "image/png" in Path(result.output_path or "").read_text()  # the contribution plot was drawn
    # before the fault: at most the designed false-alarm rate (about 1 % per statistic: T² and Q or the
    # residual, drift and spread)
    before = [item for item in result.alerts if pd.Timestamp(item.at) < fault_start]
    assert sum(samples(item) for item in before) <= 0.05 * FAULT_AT
    assert all(samples(item) <= 30 for item in before)  # (the drift statistic is an EWMA over 100 samples)


@pytest.mark.parametrize("rule", RULES)
def test_normal_data_stays_quiet(rule: str, notebook_runner: NotebookRunner, quiet_device: str) -> None:
    result = backtest(notebook_runner, rule, quiet_device)
    assert result.ok, result.error
    # the limits are set for about 1 % false alarms per statistic (up to four): no excursion, a few blips
    assert result.records["summary"]["flagged"] <= 0.05 * MONITORED
    # blips, never a sustained excursion (the drift statistic, an EWMA over 100 samples, moves slowly)
    assert all(samples(item) <= 30 for item in result.alerts)
    assert result.records["alerts"] == len(result.alerts)


def frozen_series(seed: int) -> pd.DataFrame:
    """Six independent slowly wandering sensors; s3 freezes at its usual level when the fault starts."""
    rng = np.random.default_rng(seed)
    total = BASELINE + MONITORED
    noise = rng.standard_normal((total, len(SENSORS)))
    values = np.zeros_like(noise)
    for i in range(1, total):
        values[i] = 0.7 * values[i - 1] + noise[i]
    values[BASELINE + FAULT_AT :, SENSORS.index(FAULTY)] = 0.0  # a stuck valve: no change, same mean
    index = pd.date_range(START, periods=total, freq="1s")
    return pd.DataFrame(values + 10.0, index=index, columns=SENSORS)


@pytest.fixture(scope="module")
def frozen_device(database_url: str) -> str:
    return write_device(database_url, frozen_series(4))


@pytest.mark.parametrize("rule", RULES)
def test_a_frozen_sensor_alerts_through_the_spread_statistic(
    rule: str, notebook_runner: NotebookRunner, frozen_device: str
) -> None:
    start = START + pd.Timedelta(seconds=BASELINE)
    end = START + pd.Timedelta(seconds=BASELINE + MONITORED)
    parameters = {
        "baseline_start": START.isoformat(),
        "baseline_end": start.isoformat(),
        "spread_span": 20,
        "plot": False,
    }
    result = run_notebook_rule(
        notebook_runner, f"rules/{rule}.ipynb", parameters, frozen_device, start, end, dry_run=True
    )
    assert result.ok, result.error
    assert "spread" in result.records["summary"]["limits"]
    fault_start = start + pd.Timedelta(seconds=FAULT_AT)
    alert = max(result.alerts, key=samples)
    assert fault_start <= pd.Timestamp(alert.at) <= fault_start + pd.Timedelta(seconds=60)
    assert samples(alert) > 0.8 * (MONITORED - FAULT_AT)
    assert alert.metadata["contributors"][0]["key"] == FAULTY, alert.metadata["contributors"]
