"""Hooks run when a device API key is issued or revoked (``app.py`` connects the MQTT broker's logins).

``workbench`` cannot import ``ingest``, so whoever composes the platform registers callbacks here.
A failing callback is logged and never fails the key operation: the key is already in the database.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

log = logging.getLogger(__name__)

Issued = Callable[[uuid.UUID, str], None]
Revoked = Callable[[uuid.UUID, str], None]

_lock = threading.Lock()
_issued: list[Issued] = []
_revoked: list[Revoked] = []


def on_key_issued(callback: Issued) -> Callable[[], None]:
    """Call ``callback(device_id, raw_key)`` for each new device key; returns the unregister function."""
    with _lock:
        _issued.append(callback)
    return lambda: _remove(_issued, callback)


def on_key_revoked(callback: Revoked) -> Callable[[], None]:
    """Call ``callback(device_id, key_prefix)`` per revoked device key; returns the unregister function."""
    with _lock:
        _revoked.append(callback)
    return lambda: _remove(_revoked, callback)


def issued(device_id: uuid.UUID, raw_key: str) -> None:
    """Tell the callbacks a key was issued for ``device_id``."""
    _notify(_issued, "key-issued", device_id, raw_key)


def revoked(device_id: uuid.UUID, prefix: str) -> None:
    """Tell the callbacks the key of ``device_id`` starting with ``prefix`` was revoked."""
    _notify(_revoked, "key-revoked", device_id, prefix)


def _notify(callbacks: list[Issued], hook: str, device_id: uuid.UUID, detail: str) -> None:
    with _lock:
        snapshot = list(callbacks)
    for callback in snapshot:
        try:
            callback(device_id, detail)
        except Exception:  # one broken hook must not stop the others or the API call
            log.exception("%s hook %r failed for device %s", hook, callback, device_id)


def _remove(callbacks: list, callback: object) -> None:
    with _lock:
        if callback in callbacks:
            callbacks.remove(callback)
