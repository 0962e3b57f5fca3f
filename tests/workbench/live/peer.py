"""A second web process for the Redis test: publishes telemetry and alerts on its own bus until killed."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime

import pandas as pd

from app import create_app
from workbench.live.bridge import RedisBridge
from workbench.live.bus import ALERT, TELEMETRY_BATCH
from workbench.live.events import BATCH_COLUMNS, TelemetryBatch
from workbench.platform import EXTENSION, Platform
from workbench.settings import Settings


def main(database_url: str, redis_url: str, device_id: str) -> None:
    """Run the peer: ``python -m tests.workbench.live.peer DATABASE_URL REDIS_URL DEVICE_ID``."""
    settings = Settings.from_env({}, database_url=database_url, redis_url=redis_url)
    platform: Platform = create_app(settings).extensions[EXTENSION]
    RedisBridge(redis_url, platform.bus).start()  # as `workbench up` does
    print("ready", flush=True)
    counter = 0
    while True:
        counter += 1
        now = pd.Timestamp.now(tz="UTC")
        frame = pd.DataFrame(
            [(now, device_id, "speed", float(counter), "rpm", 100)], columns=list(BATCH_COLUMNS)
        )
        platform.bus.publish(TELEMETRY_BATCH, TelemetryBatch(frame, "peer", datetime.now(UTC)))
        platform.bus.publish(
            ALERT,
            {
                "id": str(uuid.uuid4()),
                "device_id": device_id,
                "severity": "critical",
                "message": f"peer {counter}",
                "timestamp": datetime.now(UTC),
            },
        )
        time.sleep(0.2)


if __name__ == "__main__":
    main(*sys.argv[1:4])
