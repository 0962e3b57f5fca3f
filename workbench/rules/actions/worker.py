"""Runs actions on worker threads, off the ingest path, with retries and backoff; logs each in action_log.

A failing action never loses the alert (the row is committed before any action runs) and never stalls
ingest (the engine only enqueues). Retries: ``retries`` in the action object, else the plugin's default;
the wait doubles from ``backoff`` seconds (default 0.5).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert

from workbench.db.tables import action_log
from workbench.metrics import ACTION_RUNS
from workbench.platform import Platform
from workbench.rules.actions.base import ActionContext, action

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One action to run for one alert or schedule tick."""

    config: dict[str, Any]
    context: ActionContext


class ActionWorker:
    """A small pool of threads draining a queue of action jobs."""

    def __init__(self, platform: Platform, threads: int = 4) -> None:
        self.platform = platform
        self.threads = max(1, threads)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the worker threads."""
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"rule-actions-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Finish queued jobs (up to ``timeout``) and stop."""
        for _ in self._workers:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._workers.clear()

    def submit(self, config: dict[str, Any], context: ActionContext) -> None:
        """Queue an action; returns at once."""
        self._queue.put(Job(config, context))

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        return self._queue.qsize() + self._busy

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued job has finished (tests, shutdown); True when drained."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.pending == 0

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._busy += 1
            try:
                run(self.platform, job)
            except Exception:  # the log row records failures; this is the last line of defence
                log.exception("action %s crashed", job.config.get("type"))
            finally:
                with self._lock:
                    self._busy -= 1


def run(platform: Platform, job: Job) -> str:
    """Run one job with its retries; write its action_log row; return the final status."""
    name = str(job.config.get("type"))
    plugin = action(name)
    retries = int(job.config.get("retries", plugin.default_retries))
    backoff = float(job.config.get("backoff", 0.5))
    alert_id = (job.context.alert or {}).get("id")
    started = datetime.now(UTC)
    attempts, error, detail, status = 0, None, None, "failed"
    while attempts <= retries:
        attempts += 1
        try:
            detail = plugin.notify(job.context, job.config)
            status, error = "success", None
            break
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"
            log.warning("action %s attempt %d failed: %s", name, attempts, error)
            if attempts <= retries:
                time.sleep(backoff * 2 ** (attempts - 1))
    ACTION_RUNS.labels(name, status).inc()
    # One row per execution, written when it ends (one transaction, not two, per action).
    with platform.engine.begin() as conn:
        conn.execute(
            insert(action_log).values(
                rule_id=uuid.UUID(job.context.rule.id),
                alert_id=uuid.UUID(alert_id) if alert_id else None,
                action=name,
                status=status,
                attempts=attempts,
                error=error,
                detail=detail,
                created_at=started,
                finished_at=func.now(),
            )
        )
    return status
