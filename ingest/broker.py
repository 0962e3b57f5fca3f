"""The local MQTT broker ``workbench up`` starts: Mosquitto when installed, else amqtt in-process.

Clients log in (``ingest.device_auth``): devices with id + API key, the platform as ``workbench`` with a
password generated once in the data directory; anonymous clients only with ``allow_anonymous``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ingest.device_auth import SERVICE_USER, MosquittoAuth, service_password
from ingest.loop_thread import LoopThread

log = logging.getLogger(__name__)

# Mosquitto's default (1000) silently drops QoS 1 messages for a subscriber that falls behind.
MAX_QUEUED_MESSAGES = 1_000_000


def mosquitto_config(
    port: int,
    data_dir: Path,
    bind: str = "127.0.0.1",
    auth_folder: Path | None = None,
    user: str | None = None,
) -> str:
    """A Mosquitto config for the workbench: one listener, deep queues, persistence in ``data_dir``.

    With ``auth_folder`` (see ``ingest.device_auth``), devices log in with id + API key, own topics only;
    without it, anyone connects. ``user``: the account Mosquitto runs as when started by root.
    """
    access = ["allow_anonymous true"]
    if auth_folder is not None:
        from ingest.device_auth import auth_config

        access = auth_config(auth_folder).strip().splitlines()
    return "\n".join(
        [
            *([f"user {user}"] if user else []),
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
    """A broker on ``127.0.0.1:port``; ``start`` picks Mosquitto or amqtt, ``stop`` ends it.

    Logins are required unless ``allow_anonymous``; their files live in ``auth_folder`` (default
    ``data_dir/broker-auth``), and ``url`` carries the platform's own login.
    """

    def __init__(
        self,
        port: int,
        data_dir: Path,
        prefer_mosquitto: bool = True,
        allow_anonymous: bool = False,
        auth_folder: Path | None = None,
    ) -> None:
        self.port = port
        self.data_dir = data_dir
        self.prefer_mosquitto = prefer_mosquitto
        self.kind = ""
        self.auth: MosquittoAuth | None = None
        if not allow_anonymous:
            folder = auth_folder or data_dir / "broker-auth"
            self.auth = MosquittoAuth(folder.resolve(), service_password(data_dir))
        self.pid_file: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._broker: Any = None
        self._amqtt = LoopThread("amqtt-broker")

    @property
    def url(self) -> str:
        """The URL the platform's own clients connect to (with the service login unless anonymous)."""
        login = f"{SERVICE_USER}:{quote(self.auth.service_password, safe='')}@" if self.auth else ""
        return f"mqtt://{login}127.0.0.1:{self.port}"

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
        auth_folder = self.auth.folder if self.auth else None
        user = None
        if auth_folder is not None and os.geteuid() == 0 and not _others_can_reach(auth_folder):
            # Started by root, Mosquitto drops to its own user, which could not read the login files here.
            log.warning("the broker's login files are private to root: Mosquitto keeps root's rights")
            user = "root"
        config.write_text(mosquitto_config(self.port, folder.resolve(), auth_folder=auth_folder, user=user))
        self._process = subprocess.Popen([binary, "-c", str(config)], stdin=subprocess.DEVNULL)
        self.pid_file = folder / "mosquitto.pid"  # where key changes find whom to send SIGHUP
        self.pid_file.write_text(f"{self._process.pid}\n")
        self.kind = "mosquitto"
        log.info("started Mosquitto (pid %s) on port %s", self._process.pid, self.port)

    def _start_amqtt(self) -> None:
        from ingest.amqtt_auth import GuardedBroker

        plugins: dict[str, Any] = {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
        }
        if self.auth is not None:
            plugins = {
                "ingest.amqtt_auth.DeviceLogins": {"folder": str(self.auth.folder)},
                "ingest.amqtt_auth.DeviceTopics": {},
            }
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": plugins,
        }

        async def boot() -> None:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(_amqtt_task_failed)
            self._broker = GuardedBroker(config, loop=loop)
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


def _amqtt_task_failed(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """One warning line for an exception left in one of amqtt's own tasks (seen: its broadcast loop racing a
    client's unsubscribe at shutdown, ``dictionary changed size during iteration``); anything else as asyncio
    reports it."""
    error = context.get("exception")
    task = context.get("future")
    if isinstance(task, asyncio.Task) and error is not None:
        where = getattr(getattr(task.get_coro(), "cr_code", None), "co_filename", "")
        if f"{os.sep}amqtt{os.sep}" in where:
            log.warning("amqtt broker task %s failed: %s: %s", task.get_name(), type(error).__name__, error)
            return
    loop.default_exception_handler(context)


def _others_can_reach(folder: Path) -> bool:
    """Whether every folder above ``folder`` lets other users through (the execute bit)."""
    return all(parent.stat().st_mode & 0o001 for parent in folder.resolve().parents)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
