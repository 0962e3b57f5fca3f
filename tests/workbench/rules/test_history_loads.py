"""History reads (statistical windows) never hold up alerts: they run beside the evaluation, not in it.

Each test holds an ACCESS EXCLUSIVE lock on ``telemetry`` from another connection, so any read of history
blocks until the lock goes: what the engine raises meanwhile did not wait for history. The server ends the
locking session after 10 idle seconds, so an engine that does wait gets through, late, and the test sees
the lock gone.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg

from tests.workbench.rules.conftest import Rig, publish
from workbench.db.engine import libpq_url
from workbench.platform import Platform


@contextlib.contextmanager
def telemetry_locked(platform: Platform) -> Iterator[Callable[[], None]]:
    """Every read of ``telemetry`` blocks while this is open (10 s at most); yields a still-locked check."""
    conn = psycopg.connect(libpq_url(platform.settings.database_url or ""))
    conn.execute("SET idle_in_transaction_session_timeout = '10s'")
    conn.execute("LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE")

    def still_locked() -> None:
        conn.execute("SELECT 1")  # fails once the server ended the session (and the lock with it)

    try:
        yield still_locked
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()


def soon(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until ``check()`` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError("not reached in time")


def test_first_evaluation_after_start_raises_while_windows_load(rig: Rig) -> None:
    hot, shaky = rig.devices(2, type=f"kiln-{uuid.uuid4().hex[:4]}")
    instant = rig.rule("threshold", {"key": "temp", "operator": ">", "value": 50}, target={"device_id": hot})
    spread = rig.rule(
        "statistical",
        {"key": "vib", "function": "range", "window": "1h", "operator": ">", "value": 3},
        target={"device_id": shaky},
    )
    rig.store(shaky, "vib", [(0, 1.0)])  # the window of a point at T0 + 60 s holds this one
    with telemetry_locked(rig.platform) as still_locked:
        engine = rig.start()  # its windows cannot load yet: start() does not wait for them
        publish(rig.platform, [(60, hot, "temp", 75), (60, shaky, "vib", 5.0)])
        [alert] = soon(lambda: rig.alerts(instant), timeout=20)
        still_locked()  # raised before any history could be read
        assert alert["value"] == 75
        time.sleep(0.3)
        assert rig.alerts(spread) == []  # its device's point waits for the window...
        assert engine.health()["queued_batches"] == 0  # ...without holding up the queue
    assert engine.idle()
    [wide] = rig.alerts(spread)  # ...and counts once the window is read: range of 1.0 (stored) and 5.0
    assert (str(wide["device_id"]), wide["value"]) == (shaky, 4.0)
    stages = engine.health()["stages_ms"]  # every evaluated frame's stages are kept
    assert stages["frames"] >= 2 and set(stages) >= {"bus", "queue", "coalesce", "evaluate", "write"}


def test_live_points_after_start_need_no_history_read(rig: Rig) -> None:
    [quiet] = rig.devices(1, type=f"fan-{uuid.uuid4().hex[:4]}")
    mean = rig.rule(
        "statistical",
        {"key": "amps", "function": "mean", "window": "10m", "operator": ">", "value": 10},
        target={"device_id": quiet},
    )
    engine = rig.start()
    assert engine.idle()  # the start's window (nothing stored) is loaded
    now = datetime.now(UTC)
    with telemetry_locked(rig.platform) as still_locked:
        # Newer than the start's read: whatever else the window holds came in live batches, so no read.
        publish(rig.platform, [(1, quiet, "amps", 12.0), (2, quiet, "amps", 14.0)], base=now)
        [alert] = soon(lambda: rig.alerts(mean), timeout=20)
        still_locked()
        assert alert["value"] == 13.0


def test_rules_asking_for_the_same_window_share_one_read(rig: Rig) -> None:
    [d] = rig.devices(1, type=f"press-{uuid.uuid4().hex[:4]}")
    condition = {"key": "force", "window": "10m", "operator": ">", "value": 50}
    mean = rig.rule("statistical", {**condition, "function": "mean"}, target={"device_id": d})
    peak = rig.rule("statistical", {**condition, "function": "max"}, target={"device_id": d})
    rig.store(d, "force", [(0, 40.0), (60, 90.0)])
    engine = rig.start()
    assert engine.idle()
    before = engine.health()["history_reads"]
    rig.evaluate(engine, [(120, d, "force", 50.0)])  # older than the start: both windows need history
    assert engine.health()["history_reads"] == before + 1
    assert [a["value"] for a in rig.alerts(peak)] == [90.0]
    assert [a["value"] for a in rig.alerts(mean)] == [60.0]
