"""The runner: runs recorded with their executed notebook; clear errors; warm kernels isolated, bounded."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest
from sqlalchemy import select

from tests.workbench.notebooks.fixtures import ROOT, SkabPump, write_notebook
from workbench.db.tables import notebook_runs
from workbench.metrics import NOTEBOOK_RUNS
from workbench.notebooks.result import NotebookError, NotebookResult
from workbench.notebooks.runner import NotebookRunner
from workbench.settings import Settings


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebooks")


@pytest.fixture(scope="module")
def runner(settings: Settings, scratch: Path, notebook_runner: NotebookRunner) -> Iterator[NotebookRunner]:
    """A runner on a scratch folder that borrows the session's warm pool."""
    borrowed = NotebookRunner(settings, root=scratch, pool=notebook_runner.pool)
    yield borrowed
    borrowed.close()


def stored(runner: NotebookRunner, result: NotebookResult) -> dict:  # type: ignore[type-arg]
    with runner.engine.connect() as conn:
        row = conn.execute(select(notebook_runs).where(notebook_runs.c.id == result.run_id)).one()
    return dict(row._mapping)


def test_a_run_is_recorded_with_its_executed_notebook(
    notebook_runner: NotebookRunner, skab_pump: SkabPump
) -> None:
    parameters = {
        "device": skab_pump.name,
        "keys": ["Volume_Flow_RateRMS"],
        "side": "lower",
        "start": skab_pump.start.isoformat(),
        "end": skab_pump.end.isoformat(),
        **skab_pump.backtest_parameters(),
    }
    result = notebook_runner.run("rules/ewma.ipynb", parameters)
    assert result.ok and result.alerts
    row = stored(notebook_runner, result)
    assert row["status"] == "ok" and row["notebook"] == "rules/ewma.ipynb"
    assert row["parameters"]["device"] == skab_pump.name and row["parameters"]["side"] == "lower"
    assert row["notebook_hash"] == hashlib.sha256((ROOT / "rules/ewma.ipynb").read_bytes()).hexdigest()
    assert row["duration_ms"] > 0 and row["finished_at"] >= row["started_at"]
    assert len(row["records"]["alerts"]) == len(result.alerts) and row["records"]["records"]["alerts"] >= 1
    executed = nbformat.read(row["output_path"], as_version=4)
    assert Path(row["output_path"]).is_relative_to(Path(notebook_runner.settings.data_dir).resolve() / "runs")
    injected = [cell for cell in executed.cells if "injected-parameters" in cell.metadata.get("tags", [])]
    assert len(injected) == 1 and skab_pump.name in injected[0].source
    assert any("alert [warning]" in str(cell.get("outputs")) for cell in executed.cells)


def test_a_broken_notebook_names_the_failing_cell(runner: NotebookRunner, scratch: Path) -> None:
    write_notebook(scratch, "broken", "y = x + 1", "z = y / 0", "never = True")
    failures = NOTEBOOK_RUNS.labels("failed")._value.get()
    result = runner.run("broken.ipynb", {"x": 2})
    assert NOTEBOOK_RUNS.labels("failed")._value.get() == failures + 1  # /metrics counts runs by status
    assert result.status == "failed" and result.failed_cell == 3
    assert result.error is not None
    assert "broken.ipynb: cell 4 failed with ZeroDivisionError" in result.error
    assert "`z = y / 0`" in result.error
    with pytest.raises(NotebookError, match="cell 4"):
        result.raise_for_status()
    row = stored(runner, result)
    assert row["status"] == "failed" and "cell 4" in row["error"]
    executed = nbformat.read(row["output_path"], as_version=4)
    assert executed.cells[-1].outputs == []  # nothing ran after the failure


def test_a_missing_notebook_or_one_outside_the_repository_is_refused(runner: NotebookRunner) -> None:
    with pytest.raises(NotebookError, match="no such notebook"):
        runner.run("nope.ipynb")
    with pytest.raises(NotebookError, match="inside"):
        runner.run("../../etc/passwd.ipynb")


def test_warm_runs_do_not_see_each_other(runner: NotebookRunner, scratch: Path) -> None:
    write_notebook(
        scratch,
        "leaky",
        "import os\nfrom workbench.notebooks import api\nleak = 42\napi.record('pid', os.getpid())",
    )
    write_notebook(
        scratch,
        "clean",
        "import os\nfrom workbench.notebooks import api\napi.record('pid', os.getpid())\n"
        "api.record('seen', sorted(k for k in globals() if k in ('leak', 'x', 'y')))",
        parameters="y = 2",
    )
    first = runner.run("leaky.ipynb", {"x": 5}).raise_for_status()
    second = runner.run("clean.ipynb").raise_for_status()
    assert first.records["pid"] == second.records["pid"]  # the same warm kernel served both
    assert second.records["seen"] == ["y"]


def test_a_run_over_its_timeout_is_stopped_and_its_kernel_replaced(
    runner: NotebookRunner, scratch: Path
) -> None:
    write_notebook(
        scratch,
        "slow",
        "import os, time\nfrom workbench.notebooks import api\napi.record('pid', os.getpid())",
        "time.sleep(60)",
    )
    write_notebook(
        scratch, "quick", "import os\nfrom workbench.notebooks import api\napi.record('pid', os.getpid())"
    )
    began = time.monotonic()
    result = runner.run("slow.ipynb", timeout=2)
    assert time.monotonic() - began < 10
    assert result.status == "timeout" and "timed out after 2 s" in (result.error or "")
    assert stored(runner, result)["status"] == "timeout" and result.output_path
    killed = result.records["pid"]
    after = runner.run("quick.ipynb").raise_for_status()
    assert after.records["pid"] != killed
    deadline = time.monotonic() + 10
    while psutil.pid_exists(killed) and psutil.Process(killed).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the timed-out kernel is still running"
        time.sleep(0.1)


def test_alerts_reach_the_callback_unless_dry_run(runner: NotebookRunner, scratch: Path) -> None:
    write_notebook(
        scratch,
        "alerting",
        "from workbench.notebooks import api\n"
        "api.alert('critical', f'x is {x}', value=x, at='2026-01-05T08:00:00Z', device='pump-7', key='flow', "
        "end='2026-01-05T08:05:00Z', threshold=3)\napi.record('n', 1)",
    )
    delivered: list[NotebookResult] = []
    rule_less = runner.run("alerting.ipynb", {"x": 9}, on_alerts=delivered.append)
    assert delivered == [rule_less]
    alert = rule_less.alerts[0]
    assert (alert.severity, alert.message, alert.value, alert.device, alert.key, alert.threshold) == (
        "critical",
        "x is 9",
        9,
        "pump-7",
        "flow",
        3,
    )
    assert alert.at.isoformat() == "2026-01-05T08:00:00+00:00" and alert.end is not None
    backtest = runner.run("alerting.ipynb", {"x": 1}, dry_run=True, on_alerts=delivered.append)
    assert len(delivered) == 1 and backtest.alerts[0].message == "x is 1"
    assert stored(runner, backtest)["records"]["dry_run"] is True


@pytest.mark.slow
def test_cold_papermill_and_dask_give_the_same_result(runner: NotebookRunner, scratch: Path) -> None:
    write_notebook(
        scratch,
        "modes",
        "from workbench.notebooks import api\napi.record('double', x * 2)\n"
        "api.record('context', api.context())\napi.alert('info', 'hello')",
    )
    try:
        for mode in ("cold", "dask"):
            result = runner.run("modes.ipynb", {"x": 21}, mode=mode, dry_run=True).raise_for_status()
            assert result.mode == mode and result.records["double"] == 42 and len(result.alerts) == 1
            assert result.records["context"] == {
                "run_id": str(result.run_id),
                "dry_run": True,
                "notebook": "modes.ipynb",
                "replica_reads": True,  # a backtest reads history: the replica, where there is one
            }
            assert stored(runner, result)["status"] == "ok"
        broken = write_notebook(scratch, "cold_broken", "1 / 0")
        failed = runner.run(broken.name, mode="cold")
        assert failed.status == "failed" and "cell 3 failed with ZeroDivisionError" in (failed.error or "")
    finally:
        runner.close()  # and its Dask client (its LocalCluster with it)
    assert runner._dask is None


def test_unknown_mode_is_refused(runner: NotebookRunner) -> None:
    with pytest.raises(ValueError, match="mode"):
        runner.run(f"{uuid.uuid4()}.ipynb", mode="fast")


def test_the_executed_notebook_is_complete_evidence(runner: NotebookRunner, scratch: Path) -> None:
    """Warm runs execute every cell in one kernel request: the saved notebook must still be what a
    cell-by-cell papermill run saves (valid, counts 1..n, each cell's own outputs in order, durations)."""
    write_notebook(
        scratch,
        "evidence_full",
        "from workbench.notebooks import api\nprint('reading', x)",
        "api.alert('warning', 'too high', value=x, at='2026-01-05T08:00:00Z')\napi.record('x', x)\n"
        "print('after')",
        "x * 2",
        "%time y = x + 1",
        parameters="x = 1",
    )
    warm = runner.run("evidence_full.ipynb", {"x": 3}).raise_for_status()
    cold = runner.run("evidence_full.ipynb", {"x": 3}, mode="cold").raise_for_status()
    assert warm.alerts == cold.alerts and warm.records == cold.records == {"x": 3}
    assert set(warm.stages) == {"prepare", "execute", "save", "record"}
    saved = {}
    for result in (warm, cold):
        executed = nbformat.read(result.output_path or "", as_version=4)
        nbformat.validate(executed)
        saved[result.mode] = [cell for cell in executed.cells if cell.cell_type == "code"]
    cells = saved["warm"]
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    assert all(cell.metadata.papermill["duration"] >= 0 for cell in cells)
    shapes = {mode: [[o.output_type for o in cell.outputs] for cell in code] for mode, code in saved.items()}
    assert shapes["warm"] == shapes["cold"]
    assert cells[2].outputs[0].text == "reading 3\n"
    after, alert = cells[3].outputs  # the cell's alerts and records are published once, at its end
    assert after.text == "after\n" and "alert [warning] too high" in alert.data["text/plain"]
    assert alert.data["application/vnd.workbench.alert+json"][0]["value"] == 3
    assert cells[4].outputs[0].data["text/plain"] == "6" and "CPU times" in cells[5].outputs[0].text


def test_a_syntax_error_names_its_cell(runner: NotebookRunner, scratch: Path) -> None:
    write_notebook(scratch, "syntax", "y = 1", "def (:", "z = 2")
    result = runner.run("syntax.ipynb")
    assert result.status == "failed" and result.failed_cell == 3 and "SyntaxError" in (result.error or "")
    executed = nbformat.read(result.output_path or "", as_version=4)
    assert executed.cells[4].outputs[0].output_type == "error" and executed.cells[5].outputs == []


def test_a_notebook_with_top_level_await_runs(runner: NotebookRunner, scratch: Path) -> None:
    write_notebook(
        scratch,
        "awaiting",
        "import asyncio\nfrom workbench.notebooks import api\nawait asyncio.sleep(0)\napi.record('x', x)",
    )
    assert runner.run("awaiting.ipynb", {"x": 4}).raise_for_status().records == {"x": 4}
