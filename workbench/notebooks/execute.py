"""Preparing and executing one notebook: parameter injection, hashing, and the cold path (plain papermill)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from workbench.notebooks.helpers import CONTEXT_ENV, DATABASE_ENV, READ_DATABASE_ENV
from workbench.notebooks.parameters import plain
from workbench.notebooks.result import describe_failure

KERNEL_NAME = "python3"


@dataclass
class Outcome:
    """How an execution ended; picklable so a Dask worker can send it back."""

    status: str
    duration_ms: float
    error: str | None = None
    failed_cell: int | None = None


def notebook_hash(path: Path) -> str:
    """SHA-256 of the notebook file as stored (what was run, for reproducibility)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kernel_env(
    database_url: str | None,
    context: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
    read_url: str | None = None,
) -> dict[str, str]:
    """The environment a notebook kernel gets: ours plus the databases the helper API uses (the primary,
    and the streaming replica for reads when there is one), the data directory (so notebooks that run
    notebooks keep their runs beside ours) and, for a kernel started for one run, that run's context."""
    env = dict(os.environ)
    if database_url:
        env[DATABASE_ENV] = database_url
    # The settings decide, not whatever this process inherited.
    env.pop(READ_DATABASE_ENV, None)
    if read_url:
        env[READ_DATABASE_ENV] = read_url
    if data_dir is not None:
        env["WORKBENCH_DATA_DIR"] = str(Path(data_dir).resolve())
    if context is not None:
        env[CONTEXT_ENV] = json.dumps(context)
    return env


def prepare(path: Path, parameters: dict[str, Any]) -> Any:
    """Read a notebook and inject ``parameters`` after its cell tagged ``parameters`` (as papermill does).

    Names must be identifiers and values JSON (:func:`~workbench.notebooks.parameters.plain`): papermill
    writes names as they are, so anything else would be code."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    parameters = plain(parameters)

    nb = load_notebook_node(str(path))  # also gives every cell a ``tags`` list, which papermill expects
    nb.metadata.setdefault("papermill", {})
    nb.metadata.setdefault(
        "kernelspec", {"name": KERNEL_NAME, "language": "python", "display_name": "Python 3"}
    )
    return parameterize_notebook(nb, parameters, kernel_name=KERNEL_NAME, language="python")


def original_index(nb: Any, executed_index: int) -> int:
    """Index of an executed cell in the author's notebook (the injected parameters cell does not count)."""
    injected = sum(
        1
        for cell in nb.cells[:executed_index]
        if "injected-parameters" in cell.get("metadata", {}).get("tags", [])
    )
    return executed_index - injected


def execute_cold(
    path: str,
    output_path: str,
    parameters: dict[str, Any],
    database_url: str | None,
    cwd: str,
    timeout: float | None,
    label: str,
    context: dict[str, Any] | None = None,
    data_dir: str | None = None,
    read_url: str | None = None,
) -> Outcome:
    """Run a notebook with plain papermill on a fresh kernel; the executed copy lands at ``output_path``.

    Runs in this process or on a Dask worker (every argument is plain data)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    parameters = plain(parameters)  # as prepare(): papermill writes names as they are
    started = time.perf_counter()
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            path,
            output_path,
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            language="python",
            progress_bar=False,
            cwd=cwd,
            execution_timeout=timeout,
            kernel_manager_class=_env_kernel_manager(kernel_env(database_url, context, data_dir, read_url)),
        )
    except PapermillExecutionError as error:
        executed = nbformat.read(output_path, as_version=4)
        index = original_index(executed, error.cell_index)
        message = describe_failure(label, index, error.source, error.ename, error.evalue)
        return Outcome("failed", _ms(started), message, index)
    except Exception as error:  # kernel died, cell timeout, unreadable notebook
        status = (
            "timeout"
            if "timed out" in str(error).lower() or "timeout" in type(error).__name__.lower()
            else "failed"
        )
        return Outcome(status, _ms(started), f"{label}: {type(error).__name__}: {error}")
    return Outcome("ok", _ms(started))


def _env_kernel_manager(env: dict[str, str]) -> type:
    """A kernel manager class that starts kernels with ``env`` (papermill offers no other way in)."""
    from jupyter_client.manager import AsyncKernelManager

    class EnvKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw.setdefault("env", env)
            await super().start_kernel(**kw)

    return EnvKernelManager


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
