"""An asyncio server (broker, simulated device) run on its own event loop in a background thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

Boot = Callable[[], Coroutine[Any, Any, Any]]


class LoopThread:
    """A daemon thread running one event loop; ``start`` boots a server on it, ``stop`` shuts it down."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the loop thread is up."""
        return self.loop is not None

    def start(self, boot: Boot, timeout: float = 10.0) -> None:
        """Run ``boot()`` on a new loop in a thread and return once it finished; raise if it failed."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop
            try:
                # Servers (pymodbus, asyncua, amqtt) bind to the running loop, so they are built inside it.
                loop.run_until_complete(boot())
            except BaseException as error:
                failure.append(error)
                self.loop = None
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"{self.name} did not start within {timeout:g} s")
        if failure:
            raise RuntimeError(f"{self.name} failed to start: {failure[0]}") from failure[0]

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 5.0) -> Any:
        """Run ``coroutine`` on the loop and wait for its result."""
        if self.loop is None:
            coroutine.close()
            raise RuntimeError(f"{self.name} is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self, shutdown: Coroutine[Any, Any, Any] | None = None, timeout: float = 5.0) -> None:
        """Await ``shutdown`` on the loop (when given), then end the loop and its thread."""
        loop = self.loop
        if loop is None:
            if shutdown is not None:
                shutdown.close()
            return
        try:
            if shutdown is not None:
                asyncio.run_coroutine_threadsafe(shutdown, loop).result(timeout)
            asyncio.run_coroutine_threadsafe(_cancel_remaining_tasks(), loop).result(timeout)
        except concurrent.futures.TimeoutError:
            # Stopping is best effort: a peer that never answers its goodbye must not fail the process's exit.
            log.warning("%s: shutting down took over %g s; stopping its loop anyway", self.name, timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout)
            self.loop = None


async def _cancel_remaining_tasks() -> None:
    # Servers leave session and keep-alive tasks behind; cancelling them ends the loop cleanly.
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
