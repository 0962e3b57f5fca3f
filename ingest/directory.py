"""The devices ingest knows: an in-memory copy of ``devices`` (id, text keys), refreshed on a miss.

A miss reads that one device from the database (a primary-key lookup), so a device registered a moment ago,
by this process or another, is visible to its next message whatever the timing. An id found missing is
not asked again for ``MISS_RELOAD_SECONDS``, and at most ``MISS_LOOKUPS_PER_SECOND`` different ids are
asked per second, so a flood of bad ids cannot hammer the database.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from workbench.db.tables import action_log, devices
from workbench.metrics import CACHE_REQUESTS
from workbench.protocols import text_keys as protocol_text_keys

# An id found missing is looked up again at most this often.
MISS_RELOAD_SECONDS = 1.0
# Different unknown ids looked up per second, at most (beyond it they are unknown until the next second).
MISS_LOOKUPS_PER_SECOND = 500
# Remembered misses, at most (the memory is dropped when full).
MAX_MISSES = 100_000
# Config changes (text keys) reach a running ingest within this delay.
REFRESH_SECONDS = 30.0

_HITS = CACHE_REQUESTS.labels("ingest_devices", "hit")
_MISSES = CACHE_REQUESTS.labels("ingest_devices", "miss")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What validation needs to know about one device."""

    id: uuid.UUID
    text_keys: frozenset[str]


class DeviceDirectory:
    """Known devices by canonical id text; ``lookup`` reads a missing id from the database (rate-limited)."""

    def __init__(self, engine: Engine, auto_register: bool = False) -> None:
        self.engine = engine
        self.auto_register = auto_register
        self._devices: dict[str, DeviceInfo] = {}
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._misses: dict[str, float] = {}
        self._lookup_second = 0
        self._lookups_this_second = 0

    def load(self) -> None:
        """Read every device from the database."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(devices.c.id, devices.c.config, devices.c.protocol)).all()
        fresh = {str(row.id): DeviceInfo(row.id, _text_keys(row.config, row.protocol)) for row in rows}
        with self._lock:
            self._devices = fresh
            self._loaded_at = time.monotonic()

    def lookup(self, device_id: str) -> DeviceInfo | None:
        """The device with this canonical id, or None when it is unknown (after one reload attempt)."""
        info = self._devices.get(device_id)
        if info is not None:
            _HITS.inc()
            if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
                self._refresh_quietly()
                return self._devices.get(device_id)
            return info
        _MISSES.inc()
        info = self._find(device_id)
        if info is None and self.auto_register:
            info = self._register(device_id)
        return info

    def changed(self, device_id: uuid.UUID | str) -> None:
        """Forget one device (just registered or reconfigured here), so its next message reads it afresh."""
        text = str(device_id)
        with self._lock:
            self._devices.pop(text, None)
            self._misses.pop(text, None)

    def forget(self) -> None:
        """Drop the cache so the next lookup reloads (after a device or config change)."""
        self._loaded_at = 0.0
        with self._lock:
            self._misses.clear()

    def _find(self, device_id: str) -> DeviceInfo | None:
        """Read one missing device from the database, unless it was found missing a moment ago."""
        now = time.monotonic()
        missed = self._misses.get(device_id)
        if missed is not None and now - missed < MISS_RELOAD_SECONDS:
            return None
        second = int(now)
        if second != self._lookup_second:
            self._lookup_second, self._lookups_this_second = second, 0
        if self._lookups_this_second >= MISS_LOOKUPS_PER_SECOND:
            return None
        self._lookups_this_second += 1
        try:
            device_uuid = uuid.UUID(device_id)
        except ValueError:
            info = None
        else:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(devices.c.id, devices.c.config, devices.c.protocol).where(
                        devices.c.id == device_uuid
                    )
                ).first()
            info = DeviceInfo(row.id, _text_keys(row.config, row.protocol)) if row is not None else None
        with self._lock:
            if info is None:
                if len(self._misses) >= MAX_MISSES:
                    self._misses.clear()
                self._misses[device_id] = now
            else:
                self._devices[device_id] = info
                self._misses.pop(device_id, None)
        return info

    def _refresh_quietly(self) -> None:
        try:
            self.load()
        except Exception:  # a failed refresh keeps the old copy; the writer reports the outage
            self._loaded_at = time.monotonic()

    def _register(self, device_id: str) -> DeviceInfo:
        device_uuid = uuid.UUID(device_id)
        with self.engine.begin() as conn:
            created = conn.execute(
                pg_insert(devices)
                .values(id=device_uuid, name=device_id, type="auto", metadata={"auto_registered": True})
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(devices.c.id)
            ).first()
            if created is not None:  # once, by whichever process registered it
                conn.execute(
                    insert(action_log).values(
                        action="device_register",
                        status="success",
                        attempts=1,
                        detail={"device_id": device_id, "by": "ingest auto-registration (first data)"},
                        finished_at=func.now(),
                    )
                )
        info = DeviceInfo(device_uuid, frozenset())
        with self._lock:
            self._devices[device_id] = info
        return info

    def __len__(self) -> int:
        return len(self._devices)


def _text_keys(config: object, protocol: str | None = None) -> frozenset[str]:
    """Declared ``config.text_keys`` plus the keys the protocol config makes text (Modbus strings)."""
    keys: set[str] = set(protocol_text_keys(protocol, config))
    if isinstance(config, dict) and isinstance(config.get("text_keys"), list):
        keys.update(str(key) for key in config["text_keys"])
    return frozenset(keys)
