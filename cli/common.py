"""What every `workbench` command shares: settings from the environment, one-line failures, stopping."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

import click
from sqlalchemy.exc import DBAPIError

from app import StartupError
from workbench.runtime import configure_logging, stop_on_signals
from workbench.settings import Settings, SettingsError

log = logging.getLogger("workbench")
DEV_HELP = "Serve with Werkzeug's development server instead of gunicorn."


def fail(message: str) -> NoReturn:
    """Print ``workbench: message`` on stderr and exit with status 1."""
    click.echo(f"workbench: {message}", err=True)
    sys.exit(1)


def settings_from_env(**overrides: Any) -> Settings:
    """The settings (WORKBENCH_* and the command's options); a bad one is a one-line failure."""
    try:
        return Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as error:
        fail(str(error))


def long_running(settings: Settings) -> threading.Event:
    """Set up a command that runs until stopped: logging, and the event SIGTERM and SIGINT set."""
    configure_logging(settings)
    return stop_on_signals()


def guarded(action: Callable[[], None]) -> None:
    """Run ``action``; any failure (expected or not) ends the command with one line on stderr."""
    try:
        action()
    except (StartupError, SettingsError) as error:
        fail(str(error))
    except KeyboardInterrupt:  # Ctrl-C of a command that does not wait for the stop signal (db, user)
        log.info("stopped")
    except Exception as error:  # anything unforeseen is still one line; the traceback is at DEBUG level
        log.debug("unexpected failure", exc_info=True)
        fail(unexpected_failure(error))


def unexpected_failure(error: BaseException) -> str:
    """One line for an unforeseen error: what failed and how to see more."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    first = (str(cause).strip().splitlines() or [""])[0][:300]
    where = "database error" if isinstance(error, DBAPIError) else "unexpected error"
    return (
        f"{where}: {type(cause).__name__}: {first} "
        "(run again with WORKBENCH_LOG_LEVEL=DEBUG for the traceback, and report it)"
    )
