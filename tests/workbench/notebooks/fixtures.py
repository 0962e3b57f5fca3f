"""Notebook fixtures for the whole suite: one warm-kernel runner per session and a SKAB pump in the database.

Loaded through ``pytest_plugins`` in ``tests/conftest.py`` so rule, notebook and report tests share one pool.

- ``notebook_runner``: a :class:`NotebookRunner` on the session database and data directory (one warm pool).
- :func:`runner_platform`: a platform (no rule engine) whose notebook rules run on a given runner.
- ``skab_pump``: one real SKAB valve1 recording (file 3: 1148 s of 8 sensors, one labelled valve fault),
  written into ``telemetry`` by binary COPY as a device named ``skab-pump-<tag>``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd
import psycopg
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from sqlalchemy import insert

from workbench.db.engine import libpq_url, make_engine
from workbench.db.tables import devices
from workbench.live.bus import EventBus
from workbench.notebooks.runner import NotebookRunner
from workbench.platform import Platform
from workbench.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
# The one recording the tests use is kept in the repository (tests/data/skab, see its README);
# WORKBENCH_TEST_SKAB_DIR points at a full copy of SKAB's valve1 folder instead.
SKAB_DIR = Path(os.environ.get("WORKBENCH_TEST_SKAB_DIR", ROOT / "tests" / "data" / "skab" / "valve1"))
SKAB_FILE = "3.csv"
BASELINE_ROWS = 400
FLOW = "Volume_Flow_RateRMS"


@dataclass(frozen=True)
class SkabPump:
    """A device holding one SKAB recording; windows follow the benchmark (first 400 rows are baseline)."""

    id: uuid.UUID
    name: str
    frame: pd.DataFrame  # sensor columns as keys, plus ``anomaly``

    @property
    def baseline_start(self) -> pd.Timestamp:
        """First baseline sample."""
        return self.frame.index[0]

    @property
    def start(self) -> pd.Timestamp:
        """First monitored sample (end of the baseline)."""
        return self.frame.index[BASELINE_ROWS]

    @property
    def end(self) -> pd.Timestamp:
        """Just after the last sample."""
        return self.frame.index[-1] + pd.Timedelta(seconds=1)

    @property
    def anomaly(self) -> pd.Series:
        """The labelled fault over the monitoring window."""
        return self.frame["anomaly"].iloc[BASELINE_ROWS:].astype(bool)

    def backtest_parameters(self) -> dict[str, str]:
        """Baseline and monitoring window parameters for a rule notebook."""
        return {
            "baseline_start": self.baseline_start.isoformat(),
            "baseline_end": self.start.isoformat(),
        }


def read_skab(path: Path) -> pd.DataFrame:
    """A SKAB file with UTC times and keys as ingest accepts them (no spaces)."""
    frame = pd.read_csv(path, sep=";", parse_dates=["datetime"])
    frame.index = pd.DatetimeIndex(frame.pop("datetime")).tz_localize("UTC")
    frame.columns = [column.split("(")[0].strip().replace(" ", "_") for column in frame.columns]
    return frame


def write_notebook(folder: Path, name: str, *sources: str, parameters: str = "x = 1") -> Path:
    """A notebook whose first code cell (tagged ``parameters``) holds ``parameters``."""
    nb = new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [
        new_markdown_cell(f"# {name}"),
        new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        *[new_code_cell(source) for source in sources],
    ]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="session")
def notebook_runner(settings: Settings) -> Iterator[NotebookRunner]:
    """The session's notebook runner: one warm kernel pool shared by every notebook test."""
    runner = NotebookRunner(settings, root=ROOT, pool_size=2)
    yield runner
    runner.close()


def runner_platform(runner: NotebookRunner) -> Platform:
    """A platform (no rule engine) whose notebook rules run on ``runner``."""
    platform = Platform(settings=runner.settings, engine=runner.engine, bus=EventBus())
    platform.services.notebooks = runner
    return platform


@pytest.fixture(scope="session")
def skab_pump(database_url: str) -> SkabPump:
    """One SKAB valve1 recording in the session database (binary COPY into telemetry)."""
    path = SKAB_DIR / SKAB_FILE
    if not path.is_file():
        pytest.skip(f"SKAB data not found at {path} (set WORKBENCH_TEST_SKAB_DIR)")
    frame = read_skab(path)
    name = f"skab-pump-{uuid.uuid4().hex[:6]}"
    engine = make_engine(database_url, pool_size=1)
    with engine.begin() as conn:
        device_id = conn.execute(
            insert(devices).values(name=name, type="pump", area="skab").returning(devices.c.id)
        ).scalar_one()
    engine.dispose()
    sensors = frame.drop(columns=["anomaly", "changepoint"])
    statement = "COPY telemetry (timestamp, device_id, key, value) FROM STDIN (FORMAT BINARY)"
    with psycopg.connect(libpq_url(database_url)) as conn, conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(["timestamptz", "uuid", "varchar", "float8"])
        for stamp, row in sensors.iterrows():
            for key, value in row.items():
                copy.write_row((stamp.to_pydatetime(), device_id, key, float(value)))
    return SkabPump(id=device_id, name=name, frame=frame)
