"""Fixtures for report tests: the platform on the session database, and a seeded plant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.workbench.reports.plant import Plant, seed_plant
from workbench.db.engine import make_engine
from workbench.live.bus import EventBus
from workbench.platform import Platform
from workbench.reports.service import ReportService
from workbench.settings import Settings


@pytest.fixture(scope="session")
def report_platform(settings: Settings) -> Iterator[Platform]:
    """A platform (engine, bus) on the session database, for running reports outside the app."""
    assert settings.database_url
    engine = make_engine(settings.database_url, pool_size=4)
    yield Platform(settings=settings, engine=engine, bus=EventBus())
    engine.dispose()


@pytest.fixture(scope="session")
def report_service(report_platform: Platform) -> Iterator[ReportService]:
    """The report service of that platform (its kernels shut down at the end)."""
    reports = ReportService(report_platform)
    yield reports
    reports.close()


@pytest.fixture(scope="session")
def plant(report_platform: Platform) -> Plant:
    """One seeded plant (three devices, one day) shared by the report tests."""
    return seed_plant(report_platform.engine)


PARAMETERS = '''database_url = ""
start = "2026-03-02T00:00:00Z"
end = "2026-03-03T00:00:00Z"
timezone = "UTC"
devices = []
area = ""
report_dir = ""'''

READ = """from workbench.reports.kit import ReportKit, styled

kit = ReportKit(database_url, start, end, timezone, devices, area, report_dir, title="Tiny report")
data = kit.telemetry()
counts = data.groupby(["device", "key"]).size().rename("readings").reset_index()
kit.sheet("Summary", counts)
styled(counts, "Readings")"""

FINISH = """for name, rows in data.groupby("device"):
    hourly = rows.groupby("key")["value"].mean().reset_index()
    kit.device_sheet(name, rows[["timestamp", "key", "value"]], hourly)
kit.finish()"""


def write_notebook(path: Path, cells: list[str]) -> Path:
    """Write a notebook whose first code cell is tagged ``parameters``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell("# Tiny report")]
    for number, source in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        if number == 0:
            cell.metadata["tags"] = ["parameters"]
        notebook.cells.append(cell)
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="session")
def tiny_notebooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small notebooks: ``tiny`` (works), ``broken`` (fails in cell 4) and ``slow`` (sleeps 1.5 s)."""
    folder = tmp_path_factory.mktemp("report-notebooks")
    write_notebook(folder / "tiny.ipynb", [PARAMETERS, READ, FINISH])
    write_notebook(folder / "broken.ipynb", [PARAMETERS, READ, "ratio = len(data) / 0", FINISH])
    write_notebook(folder / "slow.ipynb", [PARAMETERS, "import time\n\ntime.sleep(1.5)", READ, FINISH])
    return folder


@pytest.fixture(scope="session")
def tiny_service(report_platform: Platform, tiny_notebooks: Path) -> Iterator[ReportService]:
    """A report service running the tiny notebooks (one warm kernel)."""
    reports = ReportService(report_platform, notebooks_dir=tiny_notebooks, max_parallel=1)
    yield reports
    reports.close()
