"""The commands that run until stopped (cli/processes.py): SIGTERM stops them through the shared helper."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def _up(
    database_url: str, mqtt_url: str, data_dir: Path, *args: str
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``python -m app up ARGS`` on the test database and broker (process, port); killed if still running."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_DATA_DIR=str(data_dir),
        WORKBENCH_DATABASE_URL=database_url,
        WORKBENCH_MQTT_URL=mqtt_url,
        WORKBENCH_PORT=str(port),
        WORKBENCH_INGEST_CLIENT_ID=f"sigterm-{uuid.uuid4().hex[:8]}",
    )
    command = [sys.executable, "-m", "app", "up", *args]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
    with pytest.raises(requests.ConnectionError):  # nothing serves once it has stopped
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


@pytest.mark.slow
@pytest.mark.mosquitto
def test_sigterm_stops_up_gracefully(database_url: str, mqtt_url: str, tmp_path: Path) -> None:
    """SIGTERM reaches the shared stop signal: the server shuts down, services stop, status 0, no error."""
    with _up(database_url, mqtt_url, tmp_path, "--dev") as (process, port):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        else:
            raise AssertionError("workbench up --dev never answered /healthz")
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        err = process.stderr.read() if process.stderr else ""
        assert "Traceback" not in err and " ERROR " not in err, err


@pytest.mark.slow
@pytest.mark.mosquitto
def test_sigterm_while_starting_stops_without_serving_for_long(
    database_url: str, mqtt_url: str, tmp_path: Path
) -> None:
    """A SIGTERM before gunicorn's own handlers exist is kept by the shared helper and handed over."""
    with _up(database_url, mqtt_url, tmp_path) as (process, _):
        assert process.stderr is not None
        for line in process.stderr:  # the database is migrated; serving is about to start
            if "serving on" in line:
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        rest = process.stderr.read()
        assert "Traceback" not in rest, rest
