"""Start real `workbench web` processes (gunicorn) and Redis for the deployment tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from tests.conftest import ROOT, free_port

WORKBENCH = [str(ROOT / ".venv" / "bin" / "workbench")]


@dataclass
class WebProcess:
    """One `workbench web` process: its port, the process, and its captured output lines."""

    port: int
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the process (SIGTERM: graceful) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def output(self) -> str:
        """Everything the process printed (waits for the end of its output once it has exited)."""
        if self.process.poll() is not None and self.reader is not None:
            self.reader.join(10)
        return "".join(self.lines)

    def worker_pid(self) -> int:
        """The gunicorn worker's pid (the child that serves)."""
        import psutil

        children = psutil.Process(self.process.pid).children()
        assert children, "the gunicorn worker is not running"
        return children[0].pid


def web_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a web process: the test database, a data dir, no broker, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_DATABASE_URL=database_url,
        WORKBENCH_DATA_DIR=str(data_dir),
        WORKBENCH_SECRET_KEY="deployment-tests-secret-key-of-enough-length",
        WORKBENCH_LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def start_web(env: dict[str, str], *args: str, port: int | None = None, timeout: float = 90) -> WebProcess:
    """Start `workbench web` and wait until /healthz answers."""
    port = port or free_port()
    process = subprocess.Popen(
        [*WORKBENCH, "web", "--port", str(port), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    web = WebProcess(port, process)
    assert process.stdout is not None
    stream = process.stdout
    web.reader = threading.Thread(target=lambda: web.lines.extend(iter(stream.readline, "")), daemon=True)
    web.reader.start()
    wait_healthy(web, timeout)
    return web


def wait_healthy(web: WebProcess, timeout: float = 90) -> None:
    """Wait until the process answers /healthz with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if web.process.poll() is not None:
            raise AssertionError("workbench web exited:\n" + "".join(web.lines[-30:]))
        try:
            if requests.get(f"{web.url}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("workbench web did not become healthy:\n" + "".join(web.lines[-30:]))


@contextmanager
def redis_server() -> Iterator[str]:
    """A private Redis on a free port; yields its URL."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed (apt-get install redis-server)"
    port = free_port()
    folder = tempfile.mkdtemp(prefix="workbench-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*args, "--dir", folder], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
