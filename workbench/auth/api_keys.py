"""Device API keys: random, shown once, stored only as SHA-256, bound to a device, expiring, revocable."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update

from workbench.auth import key_events
from workbench.auth.principal import Principal
from workbench.db.tables import api_keys, devices
from workbench.errors import ApiError

PREFIX = "wbk_"
# last_used is written at most this often per key, so hot ingest paths do not write on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# A device posting batches pays three database round trips per look-up (pool check, query, reset):
# valid keys are reused for this long. Revoking through this process forgets them at once; a revocation
# made by another process takes effect here within this time.
AUTH_CACHE_SECONDS = 5.0
_AUTH_CACHE_SIZE = 10_000


_valid: dict[str, tuple[float, DeviceKey, datetime | None]] = {}
_generations = itertools.count(1)
_generation = 0


@dataclass(frozen=True)
class DeviceKey:
    """A valid API key, as the platform knows it (never the secret itself)."""

    id: uuid.UUID
    device_id: uuid.UUID | None
    name: str
    permissions: dict[str, Any]
    rate_limit: int


def generate() -> str:
    """A new random key (256 bits of entropy)."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(raw: str) -> str:
    """The SHA-256 hex digest stored for ``raw``."""
    return hashlib.sha256(raw.encode()).hexdigest()


def create_key(
    engine: Engine,
    device_id: uuid.UUID | None,
    name: str,
    permissions: dict[str, Any] | None = None,
    rate_limit: int = 1000,
    expires_at: datetime | None = None,
) -> tuple[uuid.UUID, str]:
    """Store a new key for the device; returns (key id, the raw key to show once)."""
    raw = generate()
    with engine.begin() as conn:
        key_id = conn.execute(
            insert(api_keys)
            .values(
                key_hash=hash_key(raw),
                prefix=raw[:12],
                name=name,
                device_id=device_id,
                permissions=permissions or {"read": True, "write": True},
                rate_limit=rate_limit,
                expires_at=expires_at,
            )
            .returning(api_keys.c.id)
        ).scalar_one()
    if device_id is not None:
        key_events.issued(device_id, raw)  # after the commit: hooks see the key in the database
    return key_id, raw


def authenticate(engine: Engine, raw: str) -> DeviceKey | None:
    """The key behind ``raw`` if it exists, is not revoked and has not expired; updates last_used."""
    if not raw or not raw.startswith(PREFIX) or len(raw) > 128:
        return None
    now = datetime.now(UTC)
    digest = hash_key(raw)
    cached = _valid.get(digest)
    if cached is not None:
        fresh_until, key, expires_at = cached
        if time.monotonic() < fresh_until and (expires_at is None or now < expires_at):
            return key
        _valid.pop(digest, None)
    generation = _generation
    with engine.connect() as conn:
        row = conn.execute(
            select(api_keys).where(
                and_(
                    api_keys.c.key_hash == digest,
                    api_keys.c.revoked_at.is_(None),
                    or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
                )
            )
        ).first()
        if row is None:
            return None
        if row.last_used is None or now - row.last_used > LAST_USED_RESOLUTION:
            conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(last_used=now))
            conn.commit()
    key = DeviceKey(
        id=row.id,
        device_id=row.device_id,
        name=row.name,
        permissions=row.permissions or {},
        rate_limit=row.rate_limit,
    )
    if generation == _generation:  # no revocation ran meanwhile: the row read is still the truth
        if len(_valid) >= _AUTH_CACHE_SIZE:
            _valid.clear()
        _valid[digest] = (time.monotonic() + AUTH_CACHE_SECONDS, key, row.expires_at)
    return key


def forget_valid_keys() -> None:
    """Drop every cached look-up (after a revocation, or when keys changed outside this process's API)."""
    global _generation
    _generation = next(_generations)
    _valid.clear()


def revoke_key(engine: Engine, key_id: uuid.UUID) -> bool:
    """Revoke a key; returns whether one was revoked."""
    return bool(_revoke(engine, api_keys.c.id == key_id))


def revoke_device_keys(engine: Engine, device_id: uuid.UUID) -> int:
    """Revoke every valid key of a device (before deleting it, so hooks see each); returns how many."""
    return _revoke(engine, api_keys.c.device_id == device_id)


def _revoke(engine: Engine, which: Any) -> int:
    forget_valid_keys()
    with engine.begin() as conn:
        revoked = conn.execute(
            update(api_keys)
            .where(and_(which, api_keys.c.revoked_at.is_(None)))
            .values(revoked_at=datetime.now(UTC))
            .returning(api_keys.c.device_id, api_keys.c.prefix)
        ).all()
    forget_valid_keys()  # again: a look-up that read the row before the commit may have cached it
    for device_id, prefix in revoked:
        if device_id is not None:
            key_events.revoked(device_id, prefix)
    return len(revoked)


# The keys service: what the API's /keys and the devices page both call, each checking keys:manage.

_SHOWN = [c for c in api_keys.c if c.name != "key_hash"]


def get(engine: Engine, principal: Principal, key_id: uuid.UUID) -> dict[str, Any]:
    """One key as listed (never its secret); 404 when absent."""
    principal.check("keys:manage")
    with engine.connect() as conn:
        row = conn.execute(select(*_SHOWN).where(api_keys.c.id == key_id)).mappings().first()
    if row is None:
        raise ApiError(404, "not_found", f"API key {key_id} not found")
    return dict(row)


def listing(
    engine: Engine,
    principal: Principal,
    device_id: uuid.UUID | None = None,
    include_revoked: bool = False,
    page: int = 1,
    page_size: int = 50,
) -> dict[str, Any]:
    """A page of keys, newest first, optionally of one device and including revoked ones."""
    principal.check("keys:manage")
    where = []
    if device_id is not None:
        where.append(api_keys.c.device_id == device_id)
    if not include_revoked:
        where.append(api_keys.c.revoked_at.is_(None))
    query = select(*_SHOWN).where(*where).order_by(api_keys.c.created_at.desc(), api_keys.c.id)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(api_keys).where(*where)).scalar_one()
        rows = conn.execute(query.limit(page_size).offset((page - 1) * page_size)).mappings()
        items = [dict(row) for row in rows]
    return {"items": items, "page": page, "page_size": page_size, "total": total}


def issue(
    engine: Engine,
    principal: Principal,
    device_id: uuid.UUID,
    name: str,
    permissions: dict[str, Any] | None = None,
    rate_limit: int = 1000,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """A new key for a device: the listed row plus ``api_key``, the secret, in this answer only."""
    principal.check("keys:manage")
    with engine.connect() as conn:
        if conn.execute(select(devices.c.id).where(devices.c.id == device_id)).first() is None:
            raise ApiError(
                404, "not_found", f"device {device_id} not found", {"fields": {"device_id": ["?"]}}
            )
    key_id, raw = create_key(engine, device_id, name, permissions, rate_limit, expires_at)
    return {**get(engine, principal, key_id), "api_key": raw}


def revoke(engine: Engine, principal: Principal, key_id: uuid.UUID) -> dict[str, Any]:
    """Revoke a key at once (idempotent); the key as listed afterwards."""
    get(engine, principal, key_id)
    revoke_key(engine, key_id)
    return get(engine, principal, key_id)


def rotate(engine: Engine, principal: Principal, key_id: uuid.UUID) -> dict[str, Any]:
    """A new secret for the device, name, permissions and limit of ``key_id``, which is revoked."""
    old = get(engine, principal, key_id)
    if old["device_id"] is None:
        raise ApiError(409, "conflict", "this key belongs to no device")
    expires = old["expires_at"] if old["expires_at"] and old["expires_at"] > datetime.now(UTC) else None
    fresh = issue(
        engine, principal, old["device_id"], old["name"], old["permissions"], old["rate_limit"], expires
    )
    revoke_key(engine, key_id)
    return fresh
