"""Execute one report notebook with papermill; a failure names the failing cell.

This is the one seam between reports and notebook execution: swap ``execute`` for the notebook runner's
warm kernels when reports should share them (reports run rarely, so a cold kernel is acceptable here).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

ProgressHook = Callable[[int, int], None]


class NotebookFailed(RuntimeError):
    """A report notebook raised; the message names the cell (number, id, first line) and the error."""

    def __init__(self, message: str, cell_number: int | None = None, executed: Path | None = None) -> None:
        super().__init__(message)
        self.cell_number = cell_number
        self.executed = executed


def notebook_hash(path: Path) -> str:
    """SHA-256 of the notebook's cell sources (outputs and metadata do not change what a report computes)."""
    notebook = nbformat.read(path, as_version=4)
    digest = hashlib.sha256()
    for cell in notebook.cells:
        digest.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    return digest.hexdigest()


def execute(
    source: Path,
    output: Path,
    parameters: dict[str, Any],
    cwd: Path,
    progress: ProgressHook | None = None,
    timeout: float = 600,
) -> nbformat.NotebookNode:
    """Run ``source`` with ``parameters`` into ``output``; raise :class:`NotebookFailed` naming the cell."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    total = sum(1 for cell in nbformat.read(source, as_version=4).cells if cell.cell_type == "code") + 1
    done = 0

    def on_cell_executed(**_: Any) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    try:
        notebook: nbformat.NotebookNode = papermill.execute_notebook(
            str(source),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(cwd),
            execution_timeout=timeout,
            on_cell_executed=on_cell_executed,
        )
    except PapermillExecutionError as error:
        number, first_line = _locate(source, error.source)
        where = f"cell {number}" if number is not None else f"the cell run as In [{error.exec_count}]"
        raise NotebookFailed(
            f"{source.name}: {where} failed ({first_line!r}): {error.ename}: {error.evalue}",
            number,
            output,
        ) from None
    return notebook


def _locate(source: Path, code: str) -> tuple[int | None, str]:
    """The 1-based position of the failing cell in the source notebook, and its first non-empty line."""
    cells = nbformat.read(source, as_version=4).cells
    first_line = next((line.strip() for line in code.splitlines() if line.strip()), "")
    for number, cell in enumerate(cells, start=1):
        if cell.cell_type == "code" and cell.source.strip() == code.strip():
            return number, first_line
    return None, first_line
