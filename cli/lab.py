"""``workbench lab``: JupyterLab on this repository, with kernels that reach the platform's database."""

from __future__ import annotations

from pathlib import Path

import click

from app import StartupError, running_services
from cli.common import guarded, settings_from_env

ROOT = Path(__file__).resolve().parent.parent  # the repository: rules/, reports/, notebooks/


@click.command("lab")
@click.option("--ip", help="Address JupyterLab listens on (default: localhost).")
@click.option("--port", type=int, help="Port JupyterLab listens on (default: its own choice).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
def lab_command(ip: str | None, port: int | None, no_browser: bool) -> None:
    """Open JupyterLab on this repository with kernels that reach the platform's database."""

    from workbench.notebooks.lab import LabUnavailable, run_lab

    settings = settings_from_env()

    def run() -> None:
        with running_services(settings, with_broker=False) as resolved:
            try:
                code = run_lab(resolved, ROOT, port, not no_browser, ip)
            except LabUnavailable as error:
                raise StartupError(str(error)) from None
            if code:
                raise StartupError(f"JupyterLab exited with status {code}")

    guarded(run)


COMMANDS = (lab_command,)
