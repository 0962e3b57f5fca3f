"""Warm kernels: a pool of started Jupyter kernels reused across runs.

A cold papermill run pays about a second to start its kernel; a warm kernel runs a small notebook in tens of
milliseconds. A run is one execute request (:mod:`workbench.notebooks.kernel_side` runs the cells one by
one and marks where each ends), not one per cell. Isolation between runs: before each run the user
namespace is emptied (``helpers._begin``: cheaper than ``%reset -f``) and the helper API forgets the previous
run's alerts and records. Modules stay imported (that is the point of keeping the kernel warm), so a
notebook that mutates a module's globals affects later runs: rule notebooks must not. Each run has a
deadline; a run that overruns gets its kernel killed and replaced in the background.
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager

from workbench.notebooks.execute import KERNEL_NAME, Outcome, original_index
from workbench.notebooks.kernel_side import CELL_MIME
from workbench.notebooks.result import NotebookError, describe_failure

PRELOAD = (
    "import numpy, pandas, scipy.stats\n"
    "from workbench.notebooks import helpers as _wb_api, kernel_side as _wb_ks\n"
    "del _wb_api, _wb_ks"
)
RESET = "import workbench.notebooks.helpers as _wb_api\n_wb_api._begin({context})\n"
BATCH = "import workbench.notebooks.kernel_side as _wb_ks\n_wb_ks.run_cells({sources}, {context})\n"
# Kernels keep no history file: runs are recorded by the platform, and sqlite writes cost time per cell.
KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:"]


class KernelTimeout(Exception):
    """The run's deadline passed while a cell was executing."""


class WarmKernel:
    """One started kernel and its blocking client."""

    def __init__(
        self, env: dict[str, str], cwd: str, startup_timeout: float = 60, transport: str = "ipc"
    ) -> None:
        self.km = KernelManager(kernel_name=KERNEL_NAME)
        if transport == "ipc":  # local sockets: lower latency than TCP loopback; absolute so cwd is moot
            self.km.transport = "ipc"
            self.km.ip = str(Path(tempfile.gettempdir()) / f"wb-kernel-{uuid.uuid4().hex[:12]}")
        self.km.start_kernel(env=env, cwd=cwd, extra_arguments=KERNEL_ARGS)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=startup_timeout)
        except RuntimeError:
            self.shutdown()
            raise
        self.runs = 0

    def execute(self, code: str, deadline: float, silent: bool = False) -> tuple[list[Any], dict[str, Any]]:
        """Run ``code``; its outputs (nbformat nodes) and the execute reply's content."""
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False)
        return self._collect(msg_id, deadline, None)

    def execute_cells(
        self, code: str, deadline: float, on_cell: Callable[[dict[str, Any], list[Any]], None]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Run a :mod:`kernel_side` batch, handing each finished cell's marker and outputs to ``on_cell``
        as it ends (so a timeout keeps what ran); the outputs after the last marker (a batch that broke)
        and the reply's content."""
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        return self._collect(msg_id, deadline, on_cell)

    def _collect(
        self, msg_id: str, deadline: float, on_cell: Callable[[dict[str, Any], list[Any]], None] | None
    ) -> tuple[list[Any], dict[str, Any]]:
        outputs: list[Any] = []
        while True:
            msg = self._next(self.kc.get_iopub_msg, deadline)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                break
            if kind == "clear_output":
                outputs.clear()
            elif on_cell is not None and kind == "display_data" and CELL_MIME in content["data"]:
                on_cell(content["data"][CELL_MIME], outputs)
                outputs = []
            elif kind in OUTPUT_FIELDS:
                _append(outputs, _output(kind, content))
        while True:
            reply = self._next(self.kc.get_shell_msg, deadline)
            if reply["parent_header"].get("msg_id") == msg_id:
                return outputs, reply["content"]

    @staticmethod
    def _next(get: Any, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KernelTimeout
        try:
            msg: dict[str, Any] = get(timeout=remaining)
        except queue.Empty:
            raise KernelTimeout from None
        return msg

    def alive(self) -> bool:
        """Whether the kernel process still runs."""
        return bool(self.km.is_alive())

    def shutdown(self) -> None:
        """Kill the kernel now (no graceful request: it may be stuck)."""
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)


# The fields each IOPub output message keeps in the notebook (as nbformat.v4.output_from_msg, which also
# validates each output: the whole notebook is validated once when it is written).
OUTPUT_FIELDS = {
    "stream": ("name", "text"),
    "display_data": ("data", "metadata"),
    "execute_result": ("data", "metadata", "execution_count"),
    "error": ("ename", "evalue", "traceback"),
}


def _output(kind: str, content: dict[str, Any]) -> Any:
    """An output node from an IOPub message's content."""
    fields = {name: content[name] for name in OUTPUT_FIELDS[kind]}
    return nbformat.from_dict({"output_type": kind, **fields})


def _append(outputs: list[Any], output: Any) -> None:
    """Merge consecutive stream chunks as Jupyter does, so saved notebooks look the same."""
    if (
        output.output_type == "stream"
        and outputs
        and outputs[-1].output_type == "stream"
        and outputs[-1].name == output.name
    ):
        outputs[-1].text += output.text
    else:
        outputs.append(output)


class KernelPool:
    """Up to ``size`` warm kernels, started lazily, each used by one run at a time."""

    def __init__(self, size: int, env: dict[str, str], cwd: str, acquire_timeout: float = 120) -> None:
        self.size = max(1, size)
        self.env = env
        self.cwd = cwd
        self.acquire_timeout = acquire_timeout
        self._idle: list[WarmKernel] = []
        self._live = 0
        self._closed = False
        self._cond = threading.Condition()

    def warm(self, count: int | None = None) -> None:
        """Start kernels now (up to ``count``, default the pool size) so the first runs are fast."""
        for _ in range(min(count or self.size, self.size)):
            with self._cond:
                if self._live >= self.size:
                    return
                self._live += 1
            self._add(self._start())

    def run(self, nb: Any, timeout: float, context: dict[str, Any], label: str) -> Outcome:
        """Execute every code cell of ``nb`` in place on a warm kernel; never raises for notebook errors."""
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
        context = json.loads(json.dumps(context))
        with self._kernel() as slot:
            kernel, broken = slot
            try:
                # Top-level await needs the kernel's own event loop: such notebooks run a request per cell.
                if any("await" in cell.source for _, cell in cells):
                    failure = self._run_each(kernel, nb, cells, context, deadline, label)
                else:
                    failure = self._run_batch(kernel, nb, cells, context, deadline, label)
            except KernelTimeout:
                broken.append(True)
                return Outcome(
                    "timeout", _ms(started), f"{label}: timed out after {timeout:g} s; kernel replaced"
                )
            if failure is not None:
                return Outcome("failed", _ms(started), *failure)
            kernel.runs += 1
        return Outcome("ok", _ms(started))

    def _run_batch(
        self,
        kernel: WarmKernel,
        nb: Any,
        cells: list[tuple[int, Any]],
        context: dict[str, Any],
        deadline: float,
        label: str,
    ) -> tuple[str, int] | None:
        """All cells in one request (:mod:`kernel_side`); the failure (message, cell) if one failed."""
        if not cells:
            return None
        code = BATCH.format(sources=repr([cell.source for _, cell in cells]), context=repr(context))
        done: list[dict[str, Any]] = []

        def on_cell(marker: dict[str, Any], outputs: list[Any]) -> None:
            _, cell = cells[marker["cell"]]
            cell.metadata.setdefault("papermill", {})["duration"] = marker["duration"]
            cell.outputs = outputs
            cell.execution_count = marker["execution_count"]
            done.append(marker)

        rest, reply = kernel.execute_cells(code, deadline, on_cell)
        if done and done[-1]["status"] != "ok":
            index, cell = cells[done[-1]["cell"]]
            return self._failure(nb, index, cell, done[-1].get("ename"), done[-1].get("evalue"), label)
        if reply.get("status") != "ok" or len(done) < len(cells):  # the batch itself broke off
            index, cell = cells[min(len(done), len(cells) - 1)]
            cell.outputs = rest
            return self._failure(nb, index, cell, reply.get("ename"), reply.get("evalue"), label)
        return None

    def _run_each(
        self,
        kernel: WarmKernel,
        nb: Any,
        cells: list[tuple[int, Any]],
        context: dict[str, Any],
        deadline: float,
        label: str,
    ) -> tuple[str, int] | None:
        """A request per cell; the failure (message, cell) if one failed."""
        # Not awaited: the kernel runs requests in order, so the reset precedes the first cell and its
        # round trip overlaps with sending the cells.
        kernel.kc.execute(
            RESET.format(context=repr(context)), silent=True, store_history=False, allow_stdin=False
        )
        for index, cell in cells:
            began = time.perf_counter()
            outputs, reply = kernel.execute(cell.source, deadline)
            cell.metadata.setdefault("papermill", {})["duration"] = round(time.perf_counter() - began, 4)
            cell.outputs = outputs
            cell.execution_count = reply.get("execution_count")
            if reply.get("status") == "error":
                return self._failure(nb, index, cell, reply.get("ename"), reply.get("evalue"), label)
        return None

    @staticmethod
    def _failure(
        nb: Any, index: int, cell: Any, ename: str | None, evalue: str | None, label: str
    ) -> tuple[str, int]:
        position = original_index(nb, index)
        return describe_failure(label, position, cell.source, ename or "Error", evalue or ""), position

    @contextmanager
    def _kernel(self) -> Iterator[tuple[WarmKernel, list[bool]]]:
        kernel = self._acquire()
        broken: list[bool] = []
        try:
            yield kernel, broken
        except BaseException:
            broken.append(True)
            raise
        finally:
            if broken or not kernel.alive():
                self._discard(kernel)
            else:
                self._add(kernel)

    def _acquire(self) -> WarmKernel:
        end = time.monotonic() + self.acquire_timeout
        with self._cond:
            while True:
                if self._closed:
                    raise NotebookError("the kernel pool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._live < self.size:
                    self._live += 1
                    break
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise NotebookError(f"no warm kernel free within {self.acquire_timeout:g} s")
                self._cond.wait(remaining)
        try:
            return self._start()
        except BaseException:
            with self._cond:
                self._live -= 1
                self._cond.notify()
            raise

    def _start(self) -> WarmKernel:
        kernel = WarmKernel(self.env, self.cwd)
        kernel.execute(PRELOAD, time.monotonic() + 60, silent=True)
        return kernel

    def _add(self, kernel: WarmKernel) -> None:
        with self._cond:
            if self._closed:
                threading.Thread(target=kernel.shutdown, daemon=True).start()
                return
            self._idle.append(kernel)
            self._cond.notify()

    def _discard(self, kernel: WarmKernel) -> None:
        """Kill a stuck or dead kernel and start its replacement, both off the caller's path."""
        with self._cond:
            self._live -= 1
            self._cond.notify()
        threading.Thread(target=kernel.shutdown, daemon=True).start()
        threading.Thread(target=self._replace, daemon=True).start()

    def _replace(self) -> None:
        with self._cond:
            if self._closed or self._live >= self.size:
                return
            self._live += 1
        try:
            self._add(self._start())
        except Exception:
            with self._cond:
                self._live -= 1
                self._cond.notify()

    def kernel_pids(self) -> list[int]:
        """Process ids of the idle kernels (benchmarks read their CPU time)."""
        with self._cond:
            found = [getattr(kernel.km.provisioner, "pid", None) for kernel in self._idle]
        return [int(pid) for pid in found if pid]

    def close(self) -> None:
        """Shut every idle kernel down; kernels in use are shut down when their run ends."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for kernel in idle:
            kernel.shutdown()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
