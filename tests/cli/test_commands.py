"""The command line as the console script and ``python -m app`` reach it: every command and option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]
# Every command with its options and arguments: moving the commands out of app.py changed none of them.
COMMANDS = {
    "certs init-ca": ["--days", "--force"],
    "certs issue": ["--days", "--out", "--server", "NAME"],
    "certs revoke": ["NAME"],
    "db grant-reader": ["--password", "--role"],
    "db upgrade": [],
    "demo": ["--dev", "--port"],
    "grafana export": ["--output", "DASHBOARD"],
    "import thingsboard": ["--database", "--device", "--json"],
    "ingest": ["--workers"],
    "lab": ["--ip", "--no-browser", "--port"],
    "simulate": ["--duration", "--fault", "--http-url", "--interval", "--plant", "--seed", "--speed"],
    "up": ["--dev", "--host", "--port"],
    "user create": ["--email", "--password", "--role"],
    "web": ["--dev", "--host", "--port", "--scheduler"],
}


def _commands(group: click.Group, prefix: str = "") -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(_commands(command, f"{path} "))
        else:
            found[path] = sorted(
                o for p in command.params for o in (p.opts if p.opts[0][0] == "-" else [p.name.upper()])
            )
    return found


def test_the_console_scripts_target_has_every_command_and_option() -> None:
    from app import cli  # pyproject's [project.scripts]: workbench = "app:cli"

    assert _commands(cli) == COMMANDS
    assert cli.commands["web"].params[2].secondary_opts == ["--no-scheduler"]


def test_python_m_app_imports_app_once() -> None:
    """``python -m app`` runs app.py as __main__; the commands find that module, not a second copy."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "app", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "Usage" in result.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    assert "cli" in imported  # the measurement sees the command modules import
    assert "app" not in imported
