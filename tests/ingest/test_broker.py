"""The local broker: Mosquitto when installed, amqtt otherwise; both deliver a real publish."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from ingest.broker import LocalBroker, mosquitto_config
from tests.conftest import free_port
from workbench.mqtt import host_port, make_client


def _roundtrip(url: str) -> bytes:
    received: list[bytes] = []
    done = threading.Event()
    subscriber = make_client(url)
    subscriber.on_message = lambda client, userdata, message: (received.append(message.payload), done.set())
    subscriber.connect(*host_port(url))
    subscriber.subscribe("wb/test", qos=1)
    subscriber.loop_start()
    publisher = make_client(url)
    publisher.connect(*host_port(url))
    publisher.loop_start()
    subscribed = threading.Event()
    subscriber.on_subscribe = lambda *args: subscribed.set()
    subscribed.wait(2)
    publisher.publish("wb/test", b"42", qos=1).wait_for_publish(5)
    done.wait(5)
    for client in (subscriber, publisher):
        client.loop_stop()
        client.disconnect()
    return received[0] if received else b""


def test_in_process_broker_delivers(tmp_path: Path) -> None:
    broker = LocalBroker(free_port(), tmp_path, prefer_mosquitto=False)
    broker.start()
    try:
        assert broker.kind == "amqtt"
        assert _roundtrip(broker.url) == b"42"  # with the service login the URL carries
    finally:
        broker.stop()


@pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="Mosquitto is not installed",
)
def test_mosquitto_broker_delivers(tmp_path: Path) -> None:
    broker = LocalBroker(free_port(), tmp_path)
    broker.start()
    try:
        assert broker.kind == "mosquitto"
        assert _roundtrip(broker.url) == b"42"
    finally:
        broker.stop()


def test_mosquitto_config_raises_the_queue_limit(tmp_path: Path) -> None:
    assert "max_queued_messages 1000000" in mosquitto_config(1883, tmp_path)


def test_an_exception_left_in_an_amqtt_task_is_one_warning_others_as_asyncio_reports(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio
    import logging
    import os

    from ingest.broker import _amqtt_task_failed

    namespace: dict[str, Any] = {}
    # A coroutine whose code lives in an amqtt module, as amqtt's broadcast loop does.
    source = "async def _run_broadcast():\n    raise RuntimeError('dictionary changed size')\n"
    exec(compile(source, f"{os.sep}site-packages{os.sep}amqtt{os.sep}broker.py", "exec"), namespace)

    async def ours() -> None:
        raise ValueError("ours")

    loop = asyncio.new_event_loop()
    reported: list[dict[str, Any]] = []
    loop.default_exception_handler = reported.append  # type: ignore[method-assign]
    try:
        for coroutine in (namespace["_run_broadcast"](), ours()):
            task = loop.create_task(coroutine)
            loop.run_until_complete(asyncio.wait([task]))
            with caplog.at_level(logging.WARNING, logger="ingest.broker"):
                _amqtt_task_failed(loop, {"exception": task.exception(), "future": task, "message": "x"})
    finally:
        loop.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "ingest.broker"]
    assert len(warnings) == 1 and "RuntimeError: dictionary changed size" in warnings[0]
    assert [type(context["exception"]) for context in reported] == [ValueError]
