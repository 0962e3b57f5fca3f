"""Background history reads of the rule engine (statistical windows), shared between rules that ask alike.

Reads run on two threads, never on the evaluation thread that every rule's alerts wait for; the engine is
woken when one is done. Rules that differ only by function or threshold ask for the same window of the same
devices: one read serves them all (the same arguments within ``SHARE_SECONDS`` get the same future).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

SHARE_SECONDS = 5.0


class HistoryLoader:
    """Runs history reads on two threads; wakes the engine when one is done; shares identical reads."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="rule-history")
        self._wake = wake
        self._lock = threading.Lock()
        self._count = 0
        self._stopped = False
        self._recent: dict[tuple[Any, ...], tuple[float, Future[Any]]] = {}
        self.reads = 0  # reads run (shared ones once)

    def submit(self, work: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``work(*args)`` in the background (or hand out the same read, asked for just before)."""
        if self._stopped:  # a stopped engine evaluated by hand (tools, tests): read inline
            done: Future[Any] = Future()
            done.set_result(work(*args))
            return done
        key = (work, *(tuple(a) if isinstance(a, list) else a for a in args))
        now = time.monotonic()
        with self._lock:
            for old in [k for k, (at, f) in self._recent.items() if f.done() and now - at > SHARE_SECONDS]:
                del self._recent[old]
            shared = self._recent.get(key)
            if shared is not None:
                return shared[1]
            self._count += 1
            self.reads += 1
            future = self._pool.submit(work, *args)
            self._recent[key] = (now, future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[Any]) -> None:
        self._wake()
        with self._lock:
            self._count -= 1

    def in_flight(self) -> int:
        """Reads submitted and not finished."""
        return self._count

    def stop(self) -> None:
        """Drop queued reads; later ones run inline."""
        self._stopped = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._recent.clear()
