"""A background thread that does one piece of work every few seconds until it is stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``work()`` every ``interval`` seconds on a daemon thread; a failure is logged, never fatal."""

    def __init__(
        self, name: str, interval: float, work: Callable[[], object], run_first: bool = False
    ) -> None:
        self.name = name
        self.interval = interval
        self.work = work
        self.run_first = run_first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Periodic:
        """Start the thread (``run_first``: work at once, else after the first interval)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, letting a piece of work in progress finish (up to ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        if not self.run_first and self._stop.wait(self.interval):
            return
        while True:
            try:
                self.work()
            except Exception:
                log.exception("%s failed; trying again in %g s", self.name, self.interval)
            if self._stop.wait(self.interval):
                return
