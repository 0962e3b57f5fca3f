"""The Redis bus bridge: events of one process reach another's bus, once, without echo or loops."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from workbench.live.bridge import RedisBridge, decode, encode
from workbench.live.bus import DEVICE_STATUS, TELEMETRY_BATCH, EventBus
from workbench.live.events import BATCH_COLUMNS, DeviceStatus, TelemetryBatch

REDIS_URL = "redis://127.0.0.1:6379/0"


def _batch() -> TelemetryBatch:
    frame = pd.DataFrame(
        [
            (pd.Timestamp("2026-01-01T00:00:00.123456Z"), "d1", "t", 1.5, "C", 100),
            (pd.Timestamp("2026-01-01T00:00:01Z"), "d1", "mode", float("nan"), None, 90),
        ],
        columns=list(BATCH_COLUMNS),
    )
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    for column in ("device_id", "key", "unit"):  # as ingest builds them: Python objects, None for no unit
        frame[column] = pd.Series([None if v != v else v for v in frame[column]], dtype=object)
    return TelemetryBatch(frame, "mqtt", datetime.now(UTC))


def test_encode_decode_round_trip() -> None:
    batch = _batch()
    origin, topic, payload = decode(encode(TELEMETRY_BATCH, batch, "me"))
    assert (origin, topic, payload.source) == ("me", TELEMETRY_BATCH, "mqtt")
    pd.testing.assert_frame_equal(payload.frame, batch.frame, check_dtype=False)
    assert str(payload.frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    status = DeviceStatus("d1", "offline", datetime.now(UTC))
    assert decode(encode(DEVICE_STATUS, status, "me"))[2] == status


def test_events_cross_processes_once_and_never_echo() -> None:
    channel = f"test:bus:{uuid.uuid4().hex}"
    ingest_bus, web_bus = EventBus(), EventBus()
    ingest_side = RedisBridge(REDIS_URL, ingest_bus, receive=False, channel=channel)
    web_side = RedisBridge(REDIS_URL, web_bus, channel=channel)
    seen_web: list[Any] = []
    seen_ingest: list[Any] = []
    web_bus.subscribe(TELEMETRY_BATCH, lambda topic, payload: seen_web.append(payload))
    web_bus.subscribe(DEVICE_STATUS, lambda topic, payload: seen_web.append(payload))
    ingest_bus.subscribe(TELEMETRY_BATCH, lambda topic, payload: seen_ingest.append(payload))
    ingest_side.start()
    web_side.start()
    try:
        time.sleep(0.2)  # the subscription is live
        ingest_bus.publish(TELEMETRY_BATCH, _batch())
        ingest_bus.publish(DEVICE_STATUS, DeviceStatus("d1", "online", datetime.now(UTC)))
        deadline = time.monotonic() + 5
        while len(seen_web) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        web_bus.publish(TELEMETRY_BATCH, _batch())  # the web process's own event: forwarded, not echoed
        time.sleep(0.3)
    finally:
        web_side.stop()
        ingest_side.stop()
    assert len(seen_web) == 3  # two received from ingest, one local
    assert isinstance(seen_web[0], TelemetryBatch) and list(seen_web[0].frame["key"]) == ["t", "mode"]
    assert isinstance(seen_web[1], DeviceStatus) and seen_web[1].status == "online"
    assert len(seen_ingest) == 1  # ingest does not receive (forward only) and sees only its own
    assert web_side.received == 2 and ingest_side.sent == 2
