"""The periodic thread: works on time, survives a failing run, stops promptly."""

from __future__ import annotations

import threading
import time

from workbench.periodic import Periodic


def test_works_every_interval_and_survives_a_failure() -> None:
    calls: list[float] = []
    third = threading.Event()

    def work() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("first run fails")
        if len(calls) == 3:
            third.set()

    periodic = Periodic("test-periodic", 0.05, work, run_first=True).start()
    assert third.wait(5), "the failing first run stopped the thread"
    periodic.stop()
    assert not periodic.alive
    count = len(calls)
    time.sleep(0.15)
    assert len(calls) == count  # nothing runs after stop


def test_waits_one_interval_unless_run_first() -> None:
    calls: list[int] = []
    periodic = Periodic("test-wait", 10.0, lambda: calls.append(1)).start()
    time.sleep(0.1)
    started = time.monotonic()
    periodic.stop()
    assert calls == [] and time.monotonic() - started < 1.0  # stop does not wait out the interval
