"""``workbench lab``: JupyterLab on the repository, its kernels wired to the running platform.

Kernels started from this JupyterLab inherit ``WORKBENCH_DATABASE_URL`` (with ``WORKBENCH_DATABASE_READ_URL``,
where the helper API's reads go, and the Dask scheduler, when they are configured), so
``from workbench.notebooks import helpers`` reads the platform's telemetry and notebooks can
backtest rules with the same runner the platform uses.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from workbench.notebooks.execute import kernel_env
from workbench.settings import Settings, env_name

INSTALL_HINT = 'JupyterLab is not installed: run `.venv/bin/pip install -e ".[lab]"`'


class LabUnavailable(RuntimeError):
    """JupyterLab cannot start; the message says how to fix it."""


def lab_installed() -> bool:
    """Whether the ``jupyterlab`` package is importable here."""
    return importlib.util.find_spec("jupyterlab") is not None


def lab_command(
    root: Path, port: int | None = None, open_browser: bool = True, ip: str | None = None
) -> list[str]:
    """The command line that starts JupyterLab on ``root``."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}"]
    if ip is not None:
        command.append(f"--ServerApp.ip={ip}")
    if port is not None:
        command.append(f"--ServerApp.port={port}")
    if not open_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run as root; Jupyter refuses it
        command.append("--allow-root")
    return command


def lab_environment(settings: Settings) -> dict[str, str]:
    """The environment JupyterLab (and so every kernel it starts) runs with."""
    env = kernel_env(settings.database_url, data_dir=settings.data_dir, read_url=settings.database_read_url)
    if settings.dask_scheduler:
        env[env_name("dask_scheduler")] = settings.dask_scheduler
    return env


def run_lab(
    settings: Settings,
    root: Path,
    port: int | None = None,
    open_browser: bool = True,
    ip: str | None = None,
) -> int:
    """Run JupyterLab in the foreground until it exits; its exit code."""
    if not lab_installed():
        raise LabUnavailable(INSTALL_HINT)
    if not settings.database_url:
        raise LabUnavailable("the lab needs a database URL (start the platform's database first)")
    command = lab_command(root, port, open_browser, ip)
    return subprocess.call(command, env=lab_environment(settings), cwd=root)
