"""Execute report notebooks through the platform's notebook runner; a failure names the failing cell.

Reports get their own :class:`NotebookRunner` (own warm kernels) so a long report never holds a kernel
that rule evaluations are waiting for. The database URL reaches the kernel through its environment, never
as a parameter, so executed notebooks (kept, zipped, e-mailed) carry no credentials.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import nbformat
from sqlalchemy import Engine

from workbench.notebooks.execute import notebook_hash as _file_hash
from workbench.settings import Settings

# Reports read more data than rules: give them longer than the rule timeout.
REPORT_TIMEOUT_S = 900.0
# The notebook runner's ways to execute: a warm kernel, a fresh one, or a fresh one on a Dask worker.
MODES = ("warm", "cold", "dask")


class NotebookFailed(RuntimeError):
    """A report notebook raised; the message names the notebook, the cell and the error."""

    def __init__(self, message: str, cell_number: int | None = None, executed: Path | None = None) -> None:
        super().__init__(message)
        self.cell_number = cell_number
        self.executed = executed


def notebook_hash(path: Path) -> str:
    """SHA-256 of the notebook file as stored (the same hash notebook runs record)."""
    return _file_hash(path)


class ReportExecutor:
    """Runs notebooks of one reports folder on warm kernels; thread-safe, started on first use."""

    def __init__(self, settings: Settings, engine: Engine, root: Path, kernels: int = 1, mode: str = "warm"):
        self.settings = settings
        self.engine = engine
        self.root = root
        self.kernels = kernels
        self.mode = mode
        self._runner: Any = None
        self._lock = threading.Lock()

    def _get_runner(self) -> Any:
        with self._lock:
            if self._runner is None:
                from workbench.notebooks.runner import NotebookRunner

                self._runner = NotebookRunner(self.settings, self.engine, self.root, pool_size=self.kernels)
            return self._runner

    def execute(
        self,
        source: Path,
        parameters: dict[str, Any],
        report_id: uuid.UUID,
        timeout: float = REPORT_TIMEOUT_S,
    ) -> tuple[nbformat.NotebookNode, Path]:
        """Run ``source`` with ``parameters``; the executed notebook and where it is kept.

        Raises :class:`NotebookFailed` (naming the cell) when the notebook fails or times out."""
        result = self._get_runner().run(
            source, parameters, report_id=report_id, mode=self.mode, timeout=timeout
        )
        executed = Path(result.output_path) if result.output_path else None
        if not result.ok:
            cell = None if result.failed_cell is None else result.failed_cell + 1
            raise NotebookFailed(result.error or f"{source.name}: {result.status}", cell, executed)
        assert executed is not None
        return nbformat.read(executed, as_version=4), executed

    def close(self) -> None:
        """Shut the kernels down."""
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()
