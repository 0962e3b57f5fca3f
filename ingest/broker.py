"""The local MQTT broker ``workbench up`` starts: Mosquitto when installed, else amqtt in-process."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ingest.loop_thread import LoopThread

log = logging.getLogger(__name__)

# Mosquitto's default (1000) silently drops QoS 1 messages for a subscriber that falls behind.
MAX_QUEUED_MESSAGES = 1_000_000


def mosquitto_config(
    port: int, data_dir: Path, bind: str = "127.0.0.1", auth_folder: Path | None = None
) -> str:
    """A Mosquitto config for the workbench: one listener, deep queues, persistence in ``data_dir``.

    With ``auth_folder`` (see ``ingest.device_auth``), devices log in with id + API key, own topics only.
    """
    access = ["allow_anonymous true"]
    if auth_folder is not None:
        from ingest.device_auth import auth_config

        access = auth_config(auth_folder).strip().splitlines()
    return "\n".join(
        [
            f"listener {port} {bind}",
            *access,
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            "max_inflight_messages 1000",
            "persistence true",
            f"persistence_location {data_dir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "",
        ]
    )


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


class LocalBroker:
    """A broker on ``127.0.0.1:port``; ``start`` picks Mosquitto or amqtt, ``stop`` ends it."""

    def __init__(self, port: int, data_dir: Path, prefer_mosquitto: bool = True) -> None:
        self.port = port
        self.data_dir = data_dir
        self.prefer_mosquitto = prefer_mosquitto
        self.kind = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._broker: Any = None
        self._amqtt = LoopThread("amqtt-broker")

    @property
    def url(self) -> str:
        """The URL clients connect to."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the broker and wait until it accepts connections; returns its URL."""
        binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if self.prefer_mosquitto and binary:
            self._start_mosquitto(binary)
        else:
            self._start_amqtt()
        wait_for_port("127.0.0.1", self.port)
        return self.url

    def _start_mosquitto(self, binary: str) -> None:
        folder = self.data_dir / "mosquitto"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, user="mosquitto") if _user_exists("mosquitto") else None
        config = folder / "mosquitto.conf"
        config.write_text(mosquitto_config(self.port, folder.resolve()))
        self._process = subprocess.Popen([binary, "-c", str(config)], stdin=subprocess.DEVNULL)
        self.kind = "mosquitto"
        log.info("started Mosquitto (pid %s) on port %s", self._process.pid, self.port)

    def _start_amqtt(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def boot() -> None:
            self._broker = Broker(config, loop=asyncio.get_running_loop())
            await self._broker.start()

        self._amqtt.start(boot)
        self.kind = "amqtt"
        log.info("started in-process amqtt broker on port %s", self.port)

    def stop(self) -> None:
        """Stop the broker and wait for it to exit."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._broker is not None:
            self._amqtt.stop(self._broker.shutdown())
            self._broker = None


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
