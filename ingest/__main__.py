"""``python -m ingest``: the ingest service alone, without importing the web app (fast start).

Same as ``workbench ingest`` for an already-migrated database and a running broker: it needs
``WORKBENCH_DATABASE_URL`` and ``WORKBENCH_MQTT_URL``.
"""

from __future__ import annotations

import argparse
import sys

from ingest.service import run_standalone
from workbench.runtime import configure_logging
from workbench.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM or Ctrl-C; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the load")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"ingest: {error}", file=sys.stderr)
        return 1
    if not settings.database_url or not settings.mqtt_url:
        print(
            "ingest: set WORKBENCH_DATABASE_URL and WORKBENCH_MQTT_URL (or use `workbench ingest`)",
            file=sys.stderr,
        )
        return 1
    configure_logging(settings)
    try:
        run_standalone(settings, args.workers)
    except SettingsError as error:  # e.g. --workers N on a broker without MQTT 5
        print(f"ingest: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
