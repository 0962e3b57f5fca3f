"""Run a report: execute its notebook, render the format, archive it atomically, record its progress."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

from workbench.db.tables import notebook_runs, reports
from workbench.live.bus import REPORT_PROGRESS
from workbench.metrics import REPORT_RUNS, queue_probe
from workbench.notebooks.parameters import supplied
from workbench.platform import Platform
from workbench.reports import formats, params, runner
from workbench.reports.formats import ExecutedReport
from workbench.reports.kit import load_tables

log = logging.getLogger(__name__)

# The report notebooks live in the repository's reports/ folder.
NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "reports"
PROGRESS_TOPIC = REPORT_PROGRESS  # the name tests and callers know
# Progress estimate for a notebook's first run, before any duration is known.
DEFAULT_RUN_SECONDS = 30.0
SERVICE = "reports"  # the attribute of Platform.services that holds it
_CREATING = threading.Lock()


class ReportRequestError(ValueError):
    """A report cannot be requested as asked (unknown notebook or format, bad parameters)."""


class ReportService:
    """Requests, runs and archives reports for one platform; ``platform.services.reports`` holds it."""

    def __init__(self, platform: Platform, notebooks_dir: Path | None = None, max_parallel: int = 2) -> None:
        self.platform = platform
        self.notebooks_dir = notebooks_dir or NOTEBOOKS_DIR
        self.archive_dir = platform.settings.data_dir / "reports"
        assert platform.settings.database_url, "reports need a database"
        mode = platform.settings.report_execution
        # Rooted at the folder holding reports/, so runs are labelled ``reports/<name>.ipynb`` like rules.
        if mode not in runner.MODES:
            raise ValueError(f"WORKBENCH_REPORT_EXECUTION={mode!r}: use one of {', '.join(runner.MODES)}")
        self.executor = runner.ReportExecutor(
            platform.settings, platform.engine, self.notebooks_dir.parent, kernels=max_parallel, mode=mode
        )
        self._threads: set[threading.Thread] = set()
        self.tick_seconds = 1.0
        # Each render holds a kernel and a PDF engine: bound how many run at once in this process.
        self._slots = threading.BoundedSemaphore(max_parallel)
        queue_probe("reports", self.queued)

    def queued(self) -> int:
        """Reports waiting to be rendered."""
        with self.platform.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(reports).where(reports.c.status == "queued")
                ).scalar_one()
            )

    def notebooks(self) -> list[str]:
        """The report notebooks that can be run, by name."""
        return sorted(path.stem for path in self.notebooks_dir.glob("*.ipynb"))

    def notebook_path(self, name: str) -> Path:
        """The notebook file for ``name`` (with or without ``.ipynb``), confined to the reports folder."""
        stem = name[:-6] if name.endswith(".ipynb") else name
        if stem not in self.notebooks():
            raise ReportRequestError(
                f"unknown report notebook {name!r}; known: {', '.join(self.notebooks())}"
            )
        return self.notebooks_dir / f"{stem}.ipynb"

    def request(
        self,
        notebook: str,
        format_name: str,
        parameters: dict[str, Any] | None = None,
        requested_by: uuid.UUID | None = None,
        schedule_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Validate and queue a report; returns its id (run it with :meth:`run` or :meth:`submit`)."""
        path = self.notebook_path(notebook)
        if format_name not in formats.names():
            raise ReportRequestError(f"unknown format {format_name!r}; known: {', '.join(formats.names())}")
        try:
            checked = params.check(dict(parameters or {}), path)
        except params.ParameterError as error:
            raise ReportRequestError(str(error)) from None
        with self.platform.engine.begin() as conn:
            report_id: uuid.UUID = conn.execute(
                insert(reports)
                .values(
                    notebook=path.stem,
                    format=format_name,
                    parameters=checked,
                    requested_by=requested_by,
                    schedule_id=schedule_id,
                    notebook_hash=runner.notebook_hash(path),
                )
                .returning(reports.c.id)
            ).scalar_one()
        return report_id

    def submit(self, report_id: uuid.UUID, reference: datetime | None = None) -> threading.Thread:
        """Run the report in a background thread (progress goes to the row and the event bus)."""

        def render() -> None:
            try:
                self.run(report_id, reference)
            except Exception:
                log.exception("background report %s failed", report_id)
            finally:
                self._threads.discard(threading.current_thread())  # a long-running server keeps none

        thread = threading.Thread(target=render, name=f"report-{report_id}", daemon=True)
        self._threads.add(thread)
        thread.start()
        return thread

    def close(self) -> None:
        """Wait for background renders, then shut the report kernels down."""
        self.wait()
        self.executor.close()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the background renders started here (tests and shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout)
            self._threads.discard(thread)

    def get(self, report_id: uuid.UUID) -> dict[str, Any] | None:
        """The report's row as a dict, or None."""
        with self.platform.engine.connect() as conn:
            row = conn.execute(select(reports).where(reports.c.id == report_id)).mappings().first()
        return dict(row) if row else None

    def archive(self, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Reports, newest first, and how many there are."""
        with self.platform.engine.connect() as conn:
            rows = conn.execute(
                select(reports)
                .order_by(reports.c.created_at.desc(), reports.c.id)
                .limit(limit)
                .offset(offset)
            ).mappings()
            found = [dict(row) for row in rows]
            total = conn.execute(select(func.count()).select_from(reports)).scalar_one()
        return found, int(total)

    def run(self, report_id: uuid.UUID, reference: datetime | None = None) -> dict[str, Any]:
        """Execute and render the report; the row ends ``done`` with a path or ``failed`` with an error."""
        with self._slots:
            return self._run(report_id, reference)

    def _run(self, report_id: uuid.UUID, reference: datetime | None) -> dict[str, Any]:
        row = self.get(report_id)
        if row is None:
            raise LookupError(f"no report {report_id}")
        fmt = formats.get(row["format"])
        source = self.notebook_path(row["notebook"])
        resolved = params.resolve(row["parameters"], reference or datetime.now(UTC))
        self._set(report_id, status="running", progress=0.02, parameters=resolved)
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        # The work folder sits beside the archive so the final rename is atomic (same filesystem).
        work = Path(tempfile.mkdtemp(prefix=f".work-{report_id}-", dir=self.archive_dir))
        evidence = self.archive_dir / f"{report_id}.ipynb"
        try:
            data_dir = work / "data"
            self._set(report_id, progress=0.05)
            stop_ticker = self._ticker(report_id, source)
            # The caller's names (checked on request, and again by the runner); the window, timezone and
            # report_dir the platform fills in, for the names the notebook declares.
            given = {name: resolved[name] for name in row["parameters"]}
            filled = {name: value for name, value in resolved.items() if name not in given}
            values = {**supplied(source, {**filled, "report_dir": str(data_dir)}), **given}
            try:
                notebook, executed_path = self.executor.execute(source, values, report_id)
            except runner.NotebookFailed as failure:
                if failure.executed is not None and failure.executed.exists():
                    shutil.copyfile(failure.executed, evidence)
                raise
            finally:
                stop_ticker()
            shutil.copyfile(executed_path, evidence)
            self._set(report_id, progress=0.7)
            manifest, tables = load_tables(data_dir)
            executed = ExecutedReport(
                report_id=str(report_id),
                notebook_name=source.stem,
                notebook=notebook,
                notebook_path=executed_path,
                parameters=resolved,
                notebook_hash=row["notebook_hash"],
                data_hash=manifest.get("data_hash"),
                tables=tables,
                title=manifest.get("title", source.stem.replace("_", " ").capitalize()),
                work_dir=work,
            )
            partial = work / f"partial.{fmt.extension}"
            fmt.render(executed, partial, {})
            self._set(report_id, progress=0.95)
            final = self.archive_dir / f"{report_id}.{fmt.extension}"
            os.replace(partial, final)
            self._set(
                report_id,
                status="done",
                progress=1.0,
                path=str(final),
                data_hash=executed.data_hash,
                notebook_hash=executed.notebook_hash,
                finished_at=datetime.now(UTC),
            )
        except runner.NotebookFailed as error:
            self._fail(report_id, str(error))
        except Exception as error:
            log.exception("report %s failed", report_id)
            self._fail(report_id, f"{type(error).__name__}: {error}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        final_row = self.get(report_id)
        assert final_row is not None
        REPORT_RUNS.labels(final_row["format"], final_row["status"]).inc()
        return final_row

    def _ticker(self, report_id: uuid.UUID, source: Path) -> Callable[[], None]:
        """While the notebook runs, move progress from 0.05 towards 0.7 against its usual duration.

        The kernel cannot reach the event bus, so progress is estimated from this notebook's last
        successful runs (``notebook_runs``). Returns the function that stops it (and waits, so no late
        estimate lands after the real progress)."""
        stop = threading.Event()
        usual = self._usual_seconds(f"{source.parent.name}/{source.name}")

        def tick() -> None:
            started = time.monotonic()
            while not stop.wait(self.tick_seconds):
                fraction = min(0.95, (time.monotonic() - started) / usual)
                self._set(report_id, progress=round(0.05 + 0.65 * fraction, 3))

        thread = threading.Thread(target=tick, name=f"report-progress-{report_id}", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join()

        return halt

    def _usual_seconds(self, label: str) -> float:
        with self.platform.engine.connect() as conn:
            durations = conn.execute(
                select(notebook_runs.c.duration_ms)
                .where(notebook_runs.c.notebook == label, notebook_runs.c.status == "ok")
                .order_by(notebook_runs.c.started_at.desc())
                .limit(5)
            ).scalars()
            known = sorted(d / 1000 for d in durations if d)
        return max(known[len(known) // 2], 0.5) if known else DEFAULT_RUN_SECONDS

    def _fail(self, report_id: uuid.UUID, message: str) -> None:
        # The executed notebook (with the traceback) stays as evidence; no report file is written.
        self._set(report_id, status="failed", error=message, finished_at=datetime.now(UTC))

    def _set(self, report_id: uuid.UUID, **values: Any) -> None:
        with self.platform.engine.begin() as conn:
            conn.execute(update(reports).where(reports.c.id == report_id).values(**values))
        if "progress" in values or "status" in values:
            event: dict[str, Any] = {"id": str(report_id)}
            event.update({k: values[k] for k in ("status", "progress", "error") if k in values})
            self.platform.bus.publish(PROGRESS_TOPIC, event)


def service(platform: Platform) -> ReportService:
    """The platform's report service, created on first use."""
    with _CREATING:
        if platform.services.reports is None:
            platform.services.reports = ReportService(platform)
        return platform.services.reports
