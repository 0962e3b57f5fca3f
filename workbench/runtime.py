"""What every entry point shares (``workbench up``/``web``/``ingest``/``simulate``/``demo``, ``python -m
ingest``, ingest workers): one logging set-up and one way to run until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from typing import Any

from workbench import logs
from workbench.settings import Settings


def configure_logging(settings: Settings) -> None:
    """Log to stderr at ``WORKBENCH_LOG_LEVEL``; library chatter only at DEBUG (:mod:`workbench.logs`)."""
    logs.configure(settings.log_level)


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set (call from the main thread)."""
    # Not an exception raised from the handler: it lands wherever the main thread is, and inside a
    # weakref callback or a finaliser Python ignores it, leaving the process running.
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        logs.stopping.set()  # clients of servers that stop first may complain now: expected
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_until_signal(stop: threading.Event | None = None, tick: float = 0.5) -> None:
    """Block until SIGTERM or SIGINT (or until ``stop`` is set, when given)."""
    stop = stop or stop_on_signals()
    while not stop.wait(tick):
        pass
