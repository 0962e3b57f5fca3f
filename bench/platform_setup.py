"""What ``bench/ingest.py --platform`` runs against: a scratch database, a private Mosquitto and
``workbench up`` as its own process tree; and the REST calls it makes as an admin (rules, device keys).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def broker_config(port: int) -> str:
    """The Mosquitto config ``workbench up`` writes (deep queues, 1,000 in flight), without persistence."""
    from ingest.broker import mosquitto_config

    lines = mosquitto_config(port, Path("/nonexistent")).splitlines()
    kept = [line for line in lines if not line.startswith(("persistence", "allow_anonymous"))]
    return "\n".join([*kept, "allow_anonymous true", "persistence false", ""])


class Platform:
    """``workbench up`` from this checkout on a scratch database and a private broker; stopped on exit."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.database = f"wb_platform_{uuid.uuid4().hex[:8]}"
        self.folder = Path(tempfile.mkdtemp(prefix="bench-platform-"))
        self.folder.chmod(0o755)  # Mosquitto, started by root, runs as its own user
        self.mqtt_port = _free_port()
        self.web_port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.url = ""
        self.env: dict[str, str] = {}
        self.broker: subprocess.Popen[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.token: str | None = None

    def __enter__(self) -> Platform:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        from sqlalchemy.engine import make_url

        from workbench.db.embedded import ensure_database

        ensure_database(self.admin_url, self.database)
        self.url = make_url(self.admin_url).set(database=self.database).render_as_string(hide_password=False)
        config = self.folder / "mosquitto.conf"
        config.write_text(broker_config(self.mqtt_port))
        config.chmod(0o644)
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with open(self.folder / "mosquitto.log", "wb") as log:
            self.broker = subprocess.Popen([binary, "-c", str(config)], stdin=subprocess.DEVNULL, stderr=log)
        from ingest.broker import wait_for_port

        wait_for_port("127.0.0.1", self.mqtt_port)
        self.env = {
            **os.environ,
            "WORKBENCH_DATABASE_URL": self.url,
            "WORKBENCH_MQTT_URL": f"mqtt://127.0.0.1:{self.mqtt_port}",
            "WORKBENCH_HOST": "127.0.0.1",
            "WORKBENCH_PORT": str(self.web_port),
            "WORKBENCH_DATA_DIR": str(self.folder / "data"),
            "WORKBENCH_INGEST_AUTO_REGISTER": "true",
            "WORKBENCH_LOG_LEVEL": "WARNING",
        }
        with open(self.folder / "workbench.log", "wb") as log:
            self.process = subprocess.Popen(
                [*self.command(), "up"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: its whole tree is measured and stopped
            )
        self._wait_healthy(240.0)

    @staticmethod
    def command() -> list[str]:
        """The checkout's ``workbench`` CLI (``python -m app`` without a ``.venv``)."""
        script = ROOT / ".venv" / "bin" / "workbench"
        return [str(script)] if script.exists() else [sys.executable, "-m", "app"]

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"workbench up did not become healthy; its log ends:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the workbench's output."""
        path = self.folder / "workbench.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            _stop_group(self.process, 60.0)
            self.process = None
        if self.broker is not None:
            self.broker.terminate()
            try:
                self.broker.wait(10)
            except subprocess.TimeoutExpired:
                self.broker.kill()
                self.broker.wait()
            self.broker = None
        if self.url:
            from workbench.db.engine import libpq_url

            with psycopg.connect(libpq_url(self.admin_url), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- REST as an admin ------------------------------------------------------------------------

    def sign_in(self) -> None:
        """Create an admin with ``workbench user create`` and sign in through the API (once)."""
        if self.token is not None:
            return
        email, password = "bench-admin@example.com", secrets.token_urlsafe(18)
        subprocess.run(
            [*self.command(), "user", "create", "--email", email, "--role", "admin", "--password", password],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.token = self.call("POST", "/api/v1/auth/login", {"email": email, "password": password})[
            "access_token"
        ]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request (with the admin's token once signed in); raises with the answer on an error."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {path}: {error.code} {error.read()[:500]!r}") from None

    def metric(self, name: str, label: str = "") -> float:
        """The sum of a ``/metrics`` counter or gauge over its series (those with ``label``, when given)."""
        with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=30) as answer:
            text = answer.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ") and label in line
        )

    def rules_idle(self, timeout: float = 300.0) -> tuple[float, float]:
        """Wait for the rule engine: queue empty, evaluation count steady over 0.5 s; returns (count, when).

        ``when`` is the first read of the settled state: the engine was done then, give or take 0.5 s.
        """
        deadline, previous = time.monotonic() + timeout, (-1.0, 0.0)
        while time.monotonic() < deadline:
            when = time.time()
            queued = self.metric("workbench_queue_length", 'queue="rule_batches"')
            count = self.metric("workbench_rule_evaluations_total")
            if queued == 0 and count == previous[0]:
                return previous
            previous = (count, when) if queued == 0 else (-1.0, 0.0)
            time.sleep(0.5)
        raise RuntimeError(f"the rule engine did not catch up in {timeout:.0f} s\n{self.log_tail()}")


def _stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process group we started; SIGKILL it when it outlives ``timeout``."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def create_rules(platform: Platform, devices: list[str]) -> int:
    """100 threshold and 20 statistical rules over the benchmark's devices and keys, through the REST API.

    Each threshold rule watches one key on ten devices (every device and key has one; a third hold for a
    duration); the statistical rules (stddev, mean, range, zscore, rate of change over 1 or 5 minutes) watch
    a key on every device. None fires on the benchmark's values (uniform in -100..100): the cost measured
    is evaluation, not alerting.
    """
    platform.sign_in()
    made = []
    for i in range(100):
        group = devices[(i // 10) * 10 : (i // 10) * 10 + 10]
        condition = {"key": f"k{i % 10}", "operator": ">", "value": 150, "duration_seconds": (i % 3) * 30}
        made.append({"type": "threshold", "condition": condition, "target": {"device_ids": group}})
    limits = {"stddev": 100, "mean": 150, "range": 250, "zscore": 5, "rate_of_change": 1e6}
    functions = list(limits)
    for i in range(20):
        function = functions[i % 5]
        condition = {
            "key": f"k{i % 10}",
            "function": function,
            "window": "1m" if i % 2 else "5m",
            "operator": ">",
            "value": limits[function],
        }
        made.append({"type": "statistical", "condition": condition, "target": {"device_ids": devices}})
    for n, rule in enumerate(made):
        action = {"type": "alert", "severity": "warning"}
        platform.call("POST", "/api/v1/rules", {"name": f"bench-{n}", "action": action, **rule})
    return len(made)


def device_key(platform: Platform, device: str) -> str:
    """A new API key of ``device`` (registered by its first message), with a rate limit out of the way."""
    platform.sign_in()
    body = {"device_id": device, "name": "bench-http", "rate_limit": 10_000_000}
    return str(platform.call("POST", "/api/v1/keys", body)["api_key"])
