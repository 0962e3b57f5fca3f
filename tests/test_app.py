"""The `workbench` CLI as a user runs it: real processes, real embedded PostgreSQL, real broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.conftest import free_port

WORKBENCH = [sys.executable, "-m", "app"]
ROOT = Path(__file__).resolve().parent.parent


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update({"WORKBENCH_DATA_DIR": str(data_dir), **extra})
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        WORKBENCH + args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _wait_healthy(url: str, process: subprocess.Popen[str], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"workbench exited: {process.stderr.read() if process.stderr else ''}")
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == 200:
                return response.json()
        except (requests.ConnectionError, requests.Timeout):
            pass  # gunicorn listens at once; its worker answers once the app is built
        time.sleep(0.3)
    raise AssertionError("workbench never became healthy")


def _health_details(port: int, email: str, password: str) -> dict:  # type: ignore[type-arg]
    base = f"http://127.0.0.1:{port}"
    body = {"email": email, "password": password}
    login = requests.post(f"{base}/api/v1/auth/login", json=body, timeout=10)
    assert login.status_code == 200, login.text
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    health: dict = requests.get(f"{base}/healthz", headers=bearer, timeout=10).json()  # type: ignore[type-arg]
    return health


def _one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_help_everywhere() -> None:
    for args in (["--help"], ["up", "--help"], ["db", "upgrade", "--help"], ["user", "create", "--help"]):
        result = _run(args, _env(Path("/nonexistent")))
        assert result.returncode == 0
        assert "Usage" in result.stdout


def test_malformed_database_url_is_one_line(tmp_path: Path) -> None:
    result = _run(["db", "upgrade"], _env(tmp_path, WORKBENCH_DATABASE_URL="postgresql://h:port/x"))
    _one_line_error(result, "WORKBENCH_DATABASE_URL")


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    result = _run(["db", "upgrade"], _env(tmp_path, WORKBENCH_DATABASE_URL=url))
    _one_line_error(result, "database unreachable")


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(["up"], _env(tmp_path, WORKBENCH_PORT=str(port)))
    _one_line_error(result, "in use", "WORKBENCH_PORT")


def test_db_upgrade_and_user_create_on_a_given_server(database_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path, WORKBENCH_DATABASE_URL=database_url)
    assert _run(["db", "upgrade"], env).returncode == 0
    email = f"admin-{time.time_ns()}@example.com"
    created = _run(["user", "create", "--email", email, "--role", "admin", "--password", "s3cret-pass"], env)
    assert created.returncode == 0, created.stderr
    again = _run(["user", "create", "--email", email, "--role", "admin", "--password", "s3cret-pass"], env)
    _one_line_error(again, "exists")


@pytest.mark.slow
def test_up_on_embedded_defaults_stops_cleanly_and_reuses_data(tmp_path: Path) -> None:
    port, mqtt_port = free_port(), free_port()
    env = _env(tmp_path, WORKBENCH_PORT=str(port), WORKBENCH_MQTT_PORT=str(mqtt_port))
    for run in range(2):
        process = subprocess.Popen([*WORKBENCH, "up"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        try:
            assert _wait_healthy(f"http://127.0.0.1:{port}/healthz", process) == {"status": "ok"}
            children = psutil.Process(process.pid).children(recursive=True)
            postgres_pids = [
                p.pid
                for p in psutil.process_iter(["cmdline"])
                if str(tmp_path) in " ".join(p.info["cmdline"] or [])
            ]
            assert postgres_pids, "the embedded PostgreSQL runs from the data directory"
            if run == 0:
                created = _run(
                    [
                        "user",
                        "create",
                        "--email",
                        "kept@example.com",
                        "--role",
                        "viewer",
                        "--password",
                        "kept-password",
                    ],
                    env,
                )
                assert created.returncode == 0, created.stderr
            else:
                again = _run(
                    [
                        "user",
                        "create",
                        "--email",
                        "kept@example.com",
                        "--role",
                        "viewer",
                        "--password",
                        "kept-password",
                    ],
                    env,
                )
                _one_line_error(again, "exists")  # the first run's data is still there
            # Component details are for signed-in users (the viewer made by the first run).
            health = _health_details(port, "kept@example.com", "kept-password")
            assert health["components"]["database"]["status"] == "up"
            assert health["components"]["mqtt"]["status"] == "up"  # config, commands, alerts go out
        finally:
            process.send_signal(signal.SIGINT if run == 0 else signal.SIGTERM)
            process.wait(30)
        time.sleep(0.5)
        leftovers = [
            pid
            for pid in [*[c.pid for c in children], *postgres_pids]
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        assert leftovers == [], "Ctrl-C and SIGTERM leave no process behind"


def test_default_broker_port_moves_when_1883_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import StartupError, broker_port
    from workbench.settings import Settings

    monkeypatch.delenv("WORKBENCH_MQTT_PORT", raising=False)
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 1883))
        holder.listen()
    except OSError:
        pass  # already taken (a system Mosquitto): the situation under test
    try:
        port = broker_port(Settings.from_env({}))
        assert port != 1883
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # the chosen port is free
        monkeypatch.setenv("WORKBENCH_MQTT_PORT", "1883")
        with pytest.raises(StartupError, match="WORKBENCH_MQTT_PORT"):
            broker_port(Settings.from_env({}))
    finally:
        holder.close()


@pytest.mark.slow
def test_embedded_database_as_an_ordinary_user(tmp_path: Path) -> None:
    """As root the wheel runs PostgreSQL as a system user; as anyone else it runs as that user."""
    import pwd
    import shutil

    if os.geteuid() != 0:
        runner: list[str] = []  # this suite already runs as an ordinary user
        owner = None
    else:
        name = "workbench-test"
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)
        runner = [shutil.which("runuser") or "runuser", "-u", name, "--"]
        owner = name
    interpreter = WORKBENCH
    if owner:
        # The venv's interpreter may live under /root; the same Python from Debian reads the venv's packages.
        system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
        if not system.exists():
            pytest.skip(f"{system} is needed to run the workbench as another user")
        interpreter = [str(system), "-m", "app"]
    data = Path(tempfile.mkdtemp(prefix="wb-user-"))
    data.chmod(0o755)
    if owner:
        shutil.chown(data, user=owner)
    env = _env(data)
    env["HOME"] = str(data)
    site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), site])
    result = subprocess.run(
        [*runner, *interpreter, "db", "upgrade"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (data / "postgres" / "PG_VERSION").exists()
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if str(data) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == [], "the server stops when the command ends"


def test_startup_heap_is_frozen_out_of_the_collector() -> None:
    import gc

    from app import freeze_startup_heap

    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > max(before, 10_000)  # every module and object of this process
        assert len(gc.get_objects(generation=2)) < gc.get_freeze_count()
    finally:
        gc.unfreeze()
