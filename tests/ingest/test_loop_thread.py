"""The loop thread that hosts asyncio servers: start, call, failure at boot, stop."""

from __future__ import annotations

import asyncio

import pytest

from ingest.loop_thread import LoopThread


def test_boot_call_and_stop() -> None:
    thread = LoopThread("test-loop")
    booted: list[asyncio.AbstractEventLoop] = []

    async def boot() -> None:
        booted.append(asyncio.get_running_loop())

    async def double(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    thread.start(boot)
    assert thread.running and booted == [thread.loop]
    assert thread.call(double(21)) == 42
    stopped: list[bool] = []

    async def shutdown() -> None:
        stopped.append(True)

    thread.stop(shutdown())
    assert stopped == [True] and not thread.running
    with pytest.raises(RuntimeError, match="not running"):
        thread.call(double(1))


def test_boot_failure_is_raised_with_its_cause() -> None:
    thread = LoopThread("broken-server")

    async def boot() -> None:
        raise OSError("address already in use")

    with pytest.raises(RuntimeError, match="broken-server failed to start: address already in use"):
        thread.start(boot)
    assert not thread.running
