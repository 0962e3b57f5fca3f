"""Notebook rule evaluation speed: plain papermill (a kernel per run) against the warm kernel pool, same run.

A small rule notebook (``rules/ewma.ipynb``) evaluates one device over one hour of 1 Hz data. Cold: plain
``papermill.execute_notebook`` (kernel start, run, save). Warm: ``NotebookRunner.run`` on a pooled kernel,
which also records the run in ``notebook_runs`` and saves the executed notebook. Target: warm p50 <= 100 ms.

The warm runs are broken down by stage (the runner's prepare / execute / save / record, and each cell as the
kernel ran it: the data cell is the helper API's telemetry reads, the statistic cell the pandas work and the
alerts) and by CPU time per run of the runner and of the kernel process, which the machine's load does not
inflate the way it inflates wall-clock times.

    .venv/bin/python bench/notebooks.py [--cold N] [--warm N] [--json] [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbench.db.engine import libpq_url  # noqa: E402
from workbench.db.migrate import upgrade  # noqa: E402
from workbench.notebooks.helpers import DATABASE_ENV  # noqa: E402
from workbench.notebooks.runner import NotebookRunner  # noqa: E402
from workbench.settings import Settings  # noqa: E402

NOTEBOOK = "rules/ewma.ipynb"


def seed(url: str) -> tuple[uuid.UUID, dt.datetime]:
    """One device with two hours of 1 Hz data (one hour baseline, one hour monitored); returns id, end."""
    import psycopg

    end = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)
    rng = np.random.default_rng(7)
    values = 20 + rng.normal(0, 0.5, 7200)
    values[6000:6300] += 3  # one excursion to alert on
    with psycopg.connect(libpq_url(url)) as conn:
        device = conn.execute(
            "INSERT INTO devices (name, type) VALUES (%s, 'pump') RETURNING id",
            (f"bench-{uuid.uuid4().hex[:6]}",),
        ).fetchone()
        assert device is not None
        with (
            conn.cursor() as cur,
            cur.copy("COPY telemetry (timestamp, device_id, key, value) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["timestamptz", "uuid", "varchar", "float8"])
            for i, value in enumerate(values):
                copy.write_row((end - dt.timedelta(seconds=7200 - i), device[0], "flow", float(value)))
    return device[0], end


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile of samples, in milliseconds rounded to 0.1."""
    return round(float(np.quantile(samples, q)), 1)


def main() -> None:
    """Seed, measure cold then warm, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=5, help="plain papermill runs")
    parser.add_argument("--warm", type=int, default=50, help="warm-pool runs")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--database-url", default=os.environ.get("WORKBENCH_DATABASE_URL"))
    args = parser.parse_args()
    server = None
    url = args.database_url
    if not url:
        from workbench.db.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="wb-bench-pg-")) / "postgres")
        url = server.start()
    try:
        upgrade(url)
        device, end = seed(url)
        parameters: dict[str, Any] = {
            "device": str(device),
            "keys": ["flow"],
            "end": end.isoformat(),
            "window": "1h",
            "baseline": "1h",
        }
        scratch = Path(tempfile.mkdtemp(prefix="wb-bench-nb-"))
        cold = measure_cold(url, parameters, scratch, args.cold)
        settings = Settings.from_env({}, database_url=url, data_dir=scratch)
        runner = NotebookRunner(settings, root=ROOT, pool_size=1)
        try:
            warm, alerts, breakdown = measure_warm(runner, parameters, args.warm)
            minimal = measure_minimal(settings, runner, scratch, args.warm)
        finally:
            runner.close()
    finally:
        if server is not None:
            server.stop()
    figures = {
        "notebook": NOTEBOOK,
        "cold_p50_ms": percentile(cold, 0.5),
        "cold_runs": len(cold),
        "warm_p50_ms": percentile(warm, 0.5),
        "warm_p90_ms": percentile(warm, 0.9),
        "warm_runs": len(warm),
        "speedup": round(statistics.median(cold) / statistics.median(warm), 1),
        "alerts_per_run": alerts,
        "minimal_warm_p50_ms": percentile(minimal, 0.5),
        **breakdown,
        "target_warm_p50_ms": 100,
        "load_average": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{NOTEBOOK}: one device, 1 h baseline + 1 h monitored at 1 Hz, {alerts} alert(s) per run")
    print(
        f"cold (plain papermill, new kernel per run): p50 {figures['cold_p50_ms']} ms over {len(cold)} runs"
    )
    print(
        f"warm (pooled kernel, recorded, notebook saved): p50 {figures['warm_p50_ms']} ms, "
        f"p90 {figures['warm_p90_ms']} ms over {len(warm)} runs"
    )
    stages = ", ".join(f"{name} {ms}" for name, ms in breakdown["warm_stages_p50_ms"].items())
    print(f"  stages (p50 ms): {stages}")
    for name, ms in breakdown["warm_cells_p50_ms"].items():
        print(f"    cell {name}: {ms} ms")
    print(
        f"  CPU per run: runner {breakdown['runner_cpu_ms']} ms, kernel {breakdown['kernel_cpu_ms']} ms "
        f"(wall minus CPU is waiting: the database, the other process, the machine's load)"
    )
    print(f"warm, a minimal notebook (pure runner overhead): p50 {figures['minimal_warm_p50_ms']} ms")
    print(f"machine load average during the run: {figures['load_average']} ({os.cpu_count()} CPUs)")
    verdict = "met" if figures["warm_p50_ms"] <= 100 else "MISSED"
    print(f"warm is {figures['speedup']}x faster; target warm p50 <= 100 ms: {verdict}")


def measure_cold(url: str, parameters: dict[str, Any], scratch: Path, runs: int) -> list[float]:
    """Plain papermill: a fresh kernel per run, as papermill does by default."""
    import papermill

    os.environ[DATABASE_ENV] = url  # papermill's kernels inherit our environment
    samples = []
    for i in range(runs):
        began = time.perf_counter()
        papermill.execute_notebook(
            str(ROOT / NOTEBOOK), str(scratch / f"cold-{i}.ipynb"), parameters=parameters, progress_bar=False
        )
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def measure_warm(
    runner: NotebookRunner, parameters: dict[str, Any], runs: int
) -> tuple[list[float], int, dict[str, Any]]:
    """The runner's default path; the first run (kernel start) is excluded as warm-up. Also the stage
    breakdown (p50 per stage and per cell) and CPU milliseconds per run of this process and the kernel."""
    import nbformat
    import psutil

    runner.run(NOTEBOOK, parameters).raise_for_status()
    kernels = [psutil.Process(pid) for pid in runner.pool.kernel_pids()]
    samples, alerts, results = [], 0, []
    kernel_before = sum(sum(k.cpu_times()[:2]) for k in kernels)
    cpu_before = time.process_time()
    for _ in range(runs):
        began = time.perf_counter()
        result = runner.run(NOTEBOOK, parameters).raise_for_status()
        samples.append((time.perf_counter() - began) * 1000)
        alerts = len(result.alerts)
        results.append(result)
    runner_cpu = (time.process_time() - cpu_before) * 1000 / runs
    kernel_cpu = (sum(sum(k.cpu_times()[:2]) for k in kernels) - kernel_before) * 1000 / runs
    cells: dict[str, list[float]] = {}
    for result in results:  # read back after timing: per-cell durations the kernel run recorded
        executed = nbformat.read(result.output_path or "", as_version=4)
        heading = ""
        for cell in executed.cells:
            if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
                heading = cell.source.lstrip().splitlines()[0].lstrip("# ").strip()
            if cell.cell_type == "code" and "papermill" in cell.metadata:
                label = _cell_label(cell, heading)
                cells.setdefault(label, []).append(cell.metadata.papermill["duration"] * 1000)
    stages = {name: [r.stages[name] for r in results] for name in results[0].stages}
    return (
        samples,
        alerts,
        {
            "warm_stages_p50_ms": {name: percentile(values, 0.5) for name, values in stages.items()},
            "warm_cells_p50_ms": {name: percentile(values, 0.5) for name, values in cells.items()},
            "runner_cpu_ms": round(runner_cpu, 1),
            "kernel_cpu_ms": round(kernel_cpu, 1) if kernels else None,
        },
    )


def _cell_label(cell: Any, heading: str) -> str:
    """A short name for a code cell: its tag (parameters, injected-parameters), else the heading above it
    and its first line."""
    tags = cell.metadata.get("tags", [])
    if tags:
        return str(tags[0])
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"{heading} ({first[:30]})" if heading else first[:40]


def measure_minimal(settings: Settings, runner: NotebookRunner, scratch: Path, runs: int) -> list[float]:
    """A three-cell notebook that reads nothing: what the runner itself costs per evaluation."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    folder = scratch / "minimal"
    folder.mkdir()
    nb = new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [
        new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        new_code_cell("from workbench.notebooks import api"),
        new_code_cell("api.record('x', x)"),
    ]
    nbformat.write(nb, folder / "minimal.ipynb")
    minimal = NotebookRunner(settings, root=folder, pool=runner.pool)
    samples = []
    for i in range(runs):
        began = time.perf_counter()
        minimal.run("minimal.ipynb", {"x": i}).raise_for_status()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


if __name__ == "__main__":
    main()
