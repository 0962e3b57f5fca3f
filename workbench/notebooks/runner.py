"""The notebook runner: run a notebook with parameters, keep the executed copy, record the run.

Three ways to execute, same result: ``warm`` (default; a pooled kernel, tens of milliseconds), ``cold``
(plain papermill on a fresh kernel, about a second) and ``dask`` (cold papermill on a Dask worker, for long
backtests and reports). Every run is a row in ``notebook_runs`` and an executed ``.ipynb`` under
``DATA_DIR/runs/YYYY-MM-DD/<run id>.ipynb``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from sqlalchemy import Engine, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from workbench.db.engine import make_engine
from workbench.db.tables import notebook_runs
from workbench.metrics import NOTEBOOK_RUNS
from workbench.notebooks.execute import Outcome, execute_cold, kernel_env, notebook_hash, prepare
from workbench.notebooks.helpers import REPLICA_READS, _jsonable
from workbench.notebooks.parameters import check, supplied
from workbench.notebooks.pool import KernelPool
from workbench.notebooks.result import NotebookError, NotebookResult, collect_outputs
from workbench.settings import Settings

MODES = ("warm", "cold", "dask")
AlertSink = Callable[[NotebookResult], None]


def default_root() -> Path:
    """The repository holding ``rules/``, ``reports/`` and ``notebooks/`` (where this package lives)."""
    candidate = Path(__file__).resolve().parents[2]
    return candidate if (candidate / "rules").is_dir() else Path.cwd()


class NotebookRunner:
    """Runs notebooks of one repository against one platform's database; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        root: Path | None = None,
        pool_size: int | None = None,
        pool: KernelPool | None = None,
    ) -> None:
        if not settings.database_url:
            raise NotebookError("the notebook runner needs a database URL")
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url, pool_size=2)
        self.root = (root or default_root()).resolve()
        self.runs_dir = Path(settings.data_dir).resolve() / "runs"
        self.pool_size = pool_size or settings.notebook_kernels
        self._pool: KernelPool | None = pool
        self._owns_pool = pool is None  # a shared pool is closed by its owner
        self._lock = threading.Lock()
        self._dask: Any = None  # this runner's Dask client (mode="dask"), connected on first use
        self._dask_lock = threading.Lock()

    @property
    def pool(self) -> KernelPool:
        """The warm kernel pool, created on first use."""
        with self._lock:
            if self._pool is None:
                env = kernel_env(
                    self.settings.database_url,
                    data_dir=self.settings.data_dir,
                    read_url=self.settings.database_read_url,
                )
                self._pool = KernelPool(self.pool_size, env, str(self.root))
            return self._pool

    def resolve(self, notebook: str | Path) -> tuple[Path, str]:
        """The notebook's absolute path and its label relative to the repository; nothing outside it."""
        path = Path(notebook)
        path = (path if path.is_absolute() else self.root / path).resolve()
        if not path.is_relative_to(self.root):
            raise NotebookError(f"{notebook}: notebooks must live inside {self.root}")
        if path.suffix != ".ipynb" or not path.is_file():
            raise NotebookError(f"{notebook}: no such notebook")
        return path, str(path.relative_to(self.root))

    def run(
        self,
        notebook: str | Path,
        parameters: dict[str, Any] | None = None,
        *,
        rule_id: uuid.UUID | None = None,
        report_id: uuid.UUID | None = None,
        dry_run: bool = False,
        mode: str = "warm",
        timeout: float | None = None,
        on_alerts: AlertSink | None = None,
        replica_reads: bool | None = None,
    ) -> NotebookResult:
        """Run a notebook and record it. Notebook errors do not raise: the result says ``failed`` and names
        the cell (``result.raise_for_status()`` raises). ``on_alerts`` receives the result when the notebook
        raised alerts, unless ``dry_run`` (a backtest: alerts are only reported). ``replica_reads``: the
        helper API's reads go to the streaming replica, when there is one (default: for backtests and
        reports, which read history; a live rule reads the primary, where its newest points are).
        Parameters are data:
        :class:`~workbench.notebooks.parameters.ParameterError` unless each is a name the notebook declares
        set to JSON of its type (this is the last gate before a kernel, whichever path called)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        path, label = self.resolve(notebook)
        params = check(path, _jsonable(dict(parameters or {})), label=label)
        run_id = uuid.uuid4()
        digest = notebook_hash(path)
        output = self.runs_dir / dt.datetime.now(dt.UTC).strftime("%Y-%m-%d") / f"{run_id}.ipynb"
        limit = timeout or self.settings.notebook_timeout
        began = dt.datetime.now(dt.UTC)
        if mode != "warm":  # long runs are visible as `running`; warm ones are written once, at the end
            self._insert(run_id, label, params, digest, output, rule_id, report_id, began)
        if replica_reads is None:
            replica_reads = dry_run or report_id is not None
        context = {"run_id": str(run_id), "dry_run": dry_run, "notebook": label, REPLICA_READS: replica_reads}
        started = time.perf_counter()
        stages: dict[str, float] = {}
        try:
            outcome, nb = self._execute(mode, path, output, params, limit, label, context, stages)
        except Exception as error:
            outcome, nb = Outcome("failed", _ms(started), f"{label}: {error}"), None
        alerts, records = collect_outputs(nb) if nb is not None else ([], {})
        result = NotebookResult(
            run_id=run_id,
            notebook=label,
            status=outcome.status,
            parameters=params,
            alerts=alerts,
            records=records,
            output_path=str(output) if output.exists() else None,
            duration_ms=_ms(started),
            error=outcome.error,
            failed_cell=outcome.failed_cell,
            notebook_hash=digest,
            dry_run=dry_run,
            rule_id=rule_id,
            report_id=report_id,
            mode=mode,
            stages=stages,
        )
        mark = time.perf_counter()
        self._finish(result, began)
        stages["record"] = _ms(mark)
        NOTEBOOK_RUNS.labels(result.status).inc()
        if on_alerts is not None and alerts and not dry_run:
            on_alerts(result)
        return result

    def _execute(
        self,
        mode: str,
        path: Path,
        output: Path,
        params: dict[str, Any],
        limit: float,
        label: str,
        context: dict[str, Any],
        stages: dict[str, float],
    ) -> tuple[Outcome, Any]:
        output.parent.mkdir(parents=True, exist_ok=True)
        if mode == "warm":
            mark = time.perf_counter()
            nb = prepare(path, params)
            stages["prepare"] = _ms(mark)
            began = dt.datetime.now(dt.UTC)
            outcome = self.pool.run(nb, limit, context, label)
            stages["execute"] = outcome.duration_ms
            mark = time.perf_counter()
            nb.metadata.papermill.update(
                start_time=began.isoformat(),
                end_time=dt.datetime.now(dt.UTC).isoformat(),
                duration=outcome.duration_ms / 1000,
                exception=outcome.status != "ok",
                workbench={"mode": "warm", **context, "error": outcome.error},
            )
            nbformat.write(nb, output)
            stages["save"] = _ms(mark)
            return outcome, nb
        args = (
            str(path),
            str(output),
            params,
            self.settings.database_url,
            str(self.root),
            limit,
            label,
            context,
            str(Path(self.settings.data_dir).resolve()),
            self.settings.database_read_url,
        )
        mark = time.perf_counter()
        if mode == "cold":
            outcome = execute_cold(*args)
        else:
            outcome = self._dask_client().submit(execute_cold, *args, pure=False).result()
        stages["execute"] = _ms(mark)  # papermill prepares, runs and saves in one call
        nb = nbformat.read(output, as_version=4) if output.exists() else None
        return outcome, nb

    def _insert(
        self,
        run_id: uuid.UUID,
        label: str,
        params: dict[str, Any],
        digest: str,
        output: Path,
        rule_id: uuid.UUID | None,
        report_id: uuid.UUID | None,
        began: dt.datetime,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(notebook_runs).values(
                    id=run_id,
                    notebook=label,
                    rule_id=rule_id,
                    report_id=report_id,
                    parameters=params,
                    status="running",
                    notebook_hash=digest,
                    output_path=str(output),
                    started_at=began,
                )
            )

    def _finish(self, result: NotebookResult, began: dt.datetime) -> None:
        """Write the run's final row (an upsert: warm runs have no row yet, others a `running` one)."""
        records: dict[str, Any] = {
            "records": result.records,
            "alerts": [alert.to_json() for alert in result.alerts],
        }
        if result.dry_run:
            records["dry_run"] = True
        final = {
            "status": result.status,
            "error": result.error,
            "records": _jsonable(records),
            "duration_ms": result.duration_ms,
            "output_path": result.output_path,
            "finished_at": dt.datetime.now(dt.UTC),
        }
        statement = pg_insert(notebook_runs).values(
            id=result.run_id,
            notebook=result.notebook,
            rule_id=result.rule_id,
            report_id=result.report_id,
            parameters=result.parameters,
            notebook_hash=result.notebook_hash,
            started_at=began,
            **final,
        )
        with self.engine.begin() as conn:
            # No wait for the WAL flush (a few ms per run on a real disk): a crash can lose only the latest
            # run records, never one an alert points to, since WAL is flushed in order and the alert's
            # own (synchronous) commit comes later.
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            conn.execute(statement.on_conflict_do_update(index_elements=[notebook_runs.c.id], set_=final))

    def _dask_client(self) -> Any:
        from workbench.notebooks.cluster import dask_client

        with self._dask_lock:
            if self._dask is None or self._dask.status != "running":
                self._dask = dask_client(self.settings.dask_scheduler)
            return self._dask

    def close(self) -> None:
        """Shut the warm kernels (of a pool this runner owns) and its Dask client down."""
        from workbench.notebooks.cluster import close_client

        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._owns_pool:
            pool.close()
        with self._dask_lock:
            dask, self._dask = self._dask, None
        if dask is not None:
            close_client(dask)


def run_notebook_rule(
    runner: NotebookRunner,
    notebook: str | Path,
    parameters: dict[str, Any] | None,
    device: str | uuid.UUID,
    start: Any,
    end: Any,
    *,
    rule_id: uuid.UUID | None = None,
    dry_run: bool = False,
    on_alerts: AlertSink | None = None,
    mode: str = "warm",
) -> NotebookResult:
    """Evaluate a notebook rule for one device over ``[start, end)``; ``dry_run=True`` is a backtest that
    returns the would-be alerts without raising them. ``device``, ``start`` and ``end`` are set for the
    names the notebook declares."""
    path, _ = runner.resolve(notebook)
    params = dict(parameters or {})
    params.update(supplied(path, {"device": str(device), "start": _jsonable(start), "end": _jsonable(end)}))
    return runner.run(notebook, params, rule_id=rule_id, dry_run=dry_run, on_alerts=on_alerts, mode=mode)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
