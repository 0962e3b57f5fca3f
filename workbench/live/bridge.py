"""Cross-process bus: forward local bus events to Redis pub/sub and republish other processes' events.

``workbench ingest`` runs apart from the web processes; with ``WORKBENCH_REDIS_URL`` set, each process
starts a bridge: it publishes its own TelemetryBatch and DeviceStatus events on one Redis channel and
republishes, on its local bus, those that other processes published. Each event carries the origin
process id, so a process never receives its own events back and events never loop.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime
from typing import Any

import orjson
import pandas as pd

from workbench.live.bus import DEVICE_STATUS, TELEMETRY_BATCH, EventBus
from workbench.live.events import BATCH_COLUMNS, DeviceStatus, TelemetryBatch

log = logging.getLogger(__name__)

CHANNEL = "workbench:bus"
FORWARDED = (TELEMETRY_BATCH, DEVICE_STATUS)


def encode(topic: str, payload: Any, origin: str) -> bytes:
    """One bus event as JSON bytes (frames as columns; timestamps as epoch nanoseconds)."""
    if isinstance(payload, TelemetryBatch):
        frame = payload.frame
        body: dict[str, Any] = {
            "source": payload.source,
            "committed_at": payload.committed_at.isoformat(),
            "columns": {
                "timestamp": frame["timestamp"].astype("int64").tolist(),
                "device_id": frame["device_id"].tolist(),
                "key": frame["key"].tolist(),
                "value": [None if v != v else v for v in frame["value"].tolist()],
                "unit": frame["unit"].tolist(),
                "quality": frame["quality"].astype("int64").tolist(),
            },
        }
    elif isinstance(payload, DeviceStatus):
        body = {
            "device_id": payload.device_id,
            "status": payload.status,
            "timestamp": payload.timestamp.isoformat(),
        }
    else:
        raise TypeError(f"cannot forward {type(payload).__name__} on {topic}")
    return orjson.dumps({"origin": origin, "topic": topic, "body": body})


def decode(message: bytes) -> tuple[str, str, Any]:
    """(origin, topic, payload) of an encoded event."""
    envelope = orjson.loads(message)
    topic, body = envelope["topic"], envelope["body"]
    if topic == TELEMETRY_BATCH:
        columns = body["columns"]
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(
                    pd.Series(columns["timestamp"], dtype="int64"), unit="ns", utc=True
                ),
                "device_id": pd.Series(columns["device_id"], dtype=object),
                "key": pd.Series(columns["key"], dtype=object),
                "value": pd.Series(columns["value"], dtype="float64"),
                "unit": pd.Series(columns["unit"], dtype=object),
                "quality": pd.Series(columns["quality"], dtype="int64"),
            },
            columns=list(BATCH_COLUMNS),
        )
        frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
        payload: Any = TelemetryBatch(frame, body["source"], datetime.fromisoformat(body["committed_at"]))
    else:
        payload = DeviceStatus(body["device_id"], body["status"], datetime.fromisoformat(body["timestamp"]))
    return envelope["origin"], topic, payload


class RedisBridge:
    """Forwards this process's bus events to Redis and republishes other processes' events locally."""

    def __init__(
        self, url: str, bus: EventBus, forward: bool = True, receive: bool = True, channel: str = CHANNEL
    ) -> None:
        import redis

        self.bus = bus
        self.channel = channel
        self.origin = uuid.uuid4().hex
        self.redis = redis.Redis.from_url(url)
        self.forward = forward
        self.receive = receive
        self._unsubscribe: list[Any] = []
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None
        self._local = threading.local()  # marks events we are republishing, so they are not sent back
        self.sent = 0
        self.received = 0

    def start(self) -> None:
        """Subscribe to the local bus (forward) and to the Redis channel (receive)."""
        if self.forward:
            for topic in FORWARDED:
                self._unsubscribe.append(self.bus.subscribe(topic, self._send))
        if self.receive:
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(self.channel)
            self._thread = threading.Thread(target=self._listen, name="redis-bridge", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop forwarding and receiving."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._pubsub is not None:
            self._pubsub.close()
        if self._thread is not None:
            self._thread.join(2)
        self.redis.close()

    def _send(self, topic: str, payload: Any) -> None:
        if getattr(self._local, "republishing", False):
            return
        self.redis.publish(self.channel, encode(topic, payload, self.origin))
        self.sent += 1

    def _listen(self) -> None:
        while self._pubsub is not None and self._pubsub.subscribed:
            try:
                message = self._pubsub.get_message(timeout=0.5)
            except Exception as error:  # closed on stop, or Redis went away: log and end
                log.debug("redis bridge stopped listening: %s", error)
                return
            if message is None:
                continue
            try:
                origin, topic, payload = decode(message["data"])
            except Exception:
                log.exception("undecodable event on %s", self.channel)
                continue
            if origin == self.origin:
                continue
            self.received += 1
            self._local.republishing = True
            try:
                self.bus.publish(topic, payload)
            finally:
                self._local.republishing = False
