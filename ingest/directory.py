"""The devices ingest knows: an in-memory copy of ``devices`` (id, text keys), refreshed on a miss."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from workbench.db.tables import action_log, devices

# An unknown id triggers a reload, at most this often, so a flood of bad ids cannot hammer the database.
MISS_RELOAD_SECONDS = 1.0
# Config changes (text keys) reach a running ingest within this delay.
REFRESH_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What validation needs to know about one device."""

    id: uuid.UUID
    text_keys: frozenset[str]


class DeviceDirectory:
    """Known devices by canonical id text; ``lookup`` reloads from the database on a miss (rate-limited)."""

    def __init__(self, engine: Engine, auto_register: bool = False) -> None:
        self.engine = engine
        self.auto_register = auto_register
        self._devices: dict[str, DeviceInfo] = {}
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._miss_reload_at = 0.0

    def load(self) -> None:
        """Read every device from the database."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(devices.c.id, devices.c.config)).all()
        fresh = {str(row.id): DeviceInfo(row.id, _text_keys(row.config)) for row in rows}
        with self._lock:
            self._devices = fresh
            self._loaded_at = time.monotonic()

    def lookup(self, device_id: str) -> DeviceInfo | None:
        """The device with this canonical id, or None when it is unknown (after one reload attempt)."""
        info = self._devices.get(device_id)
        if info is not None:
            if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
                self._refresh_quietly()
                return self._devices.get(device_id)
            return info
        now = time.monotonic()
        if now - self._miss_reload_at >= MISS_RELOAD_SECONDS:
            self._miss_reload_at = now
            self.load()
            info = self._devices.get(device_id)
        if info is None and self.auto_register:
            info = self._register(device_id)
        return info

    def forget(self) -> None:
        """Drop the cache so the next lookup reloads (after a device or config change)."""
        self._loaded_at = 0.0
        self._miss_reload_at = 0.0

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


def _text_keys(config: object) -> frozenset[str]:
    if isinstance(config, dict):
        keys = config.get("text_keys")
        if isinstance(keys, list):
            return frozenset(str(key) for key in keys)
    return frozenset()
