"""Tokens expire, revoke and survive restarts; API keys are stored hashed, expire and revoke."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import create_engine, insert, select

from workbench.auth import api_keys, tokens
from workbench.auth.permissions import MATRIX, PERMISSIONS, allowed
from workbench.db.engine import sqlalchemy_url
from workbench.db.tables import api_keys as api_keys_table
from workbench.db.tables import devices


@pytest.fixture(scope="module")
def engine(database_url: str):  # type: ignore[no-untyped-def]
    return create_engine(sqlalchemy_url(database_url))


def test_access_token_roundtrip_and_revocation(engine) -> None:  # type: ignore[no-untyped-def]
    user_id = uuid.uuid4()
    token = tokens.issue("secret", user_id, "operator", "op@example.com")
    claims = tokens.decode("secret", token)
    assert claims["sub"] == str(user_id) and claims["role"] == "operator"
    assert claims["exp"] - claims["iat"] == 15 * 60
    with pytest.raises(tokens.TokenError, match="refresh"):
        tokens.decode("secret", token, kind="refresh")
    with pytest.raises(tokens.TokenError):
        tokens.decode("other-secret", token)
    assert not tokens.is_revoked(engine, claims["jti"])
    tokens.revoke(engine, claims)
    assert tokens.is_revoked(engine, claims["jti"])


def test_expired_token_is_refused() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    token = jwt.encode(
        {"sub": "x", "jti": "j", "type": "access", "exp": past}, "secret", algorithm=tokens.ALGORITHM
    )
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.decode("secret", token)


def test_refresh_token_lives_seven_days() -> None:
    claims = tokens.decode("s", tokens.issue("s", uuid.uuid4(), "viewer", "v@x", kind="refresh"), "refresh")
    assert claims["exp"] - claims["iat"] == 7 * 24 * 3600


def test_api_key_stored_as_sha256_and_authenticates(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        device_id = conn.execute(
            insert(devices).values(name="pump", type="sensor").returning(devices.c.id)
        ).scalar_one()
    key_id, raw = api_keys.create_key(engine, device_id, "pump key")
    with engine.connect() as conn:
        stored = conn.execute(select(api_keys_table).where(api_keys_table.c.id == key_id)).one()
    assert stored.key_hash == api_keys.hash_key(raw) and raw not in str(stored._mapping)
    found = api_keys.authenticate(engine, raw)
    assert found is not None and found.device_id == device_id and found.rate_limit == 1000
    assert api_keys.authenticate(engine, raw + "x") is None
    assert api_keys.revoke_key(engine, key_id)
    assert api_keys.authenticate(engine, raw) is None


def test_expired_api_key_is_refused(engine) -> None:  # type: ignore[no-untyped-def]
    _, raw = api_keys.create_key(engine, None, "old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert api_keys.authenticate(engine, raw) is None


def test_matrix_follows_the_design() -> None:
    assert MATRIX["admin"] == frozenset(PERMISSIONS)
    assert not allowed("engineer", "users:manage") and allowed("engineer", "rules:write")
    assert allowed("operator", "alerts:ack") and not allowed("operator", "devices:write")
    assert allowed("viewer", "dashboards:read") and not allowed("viewer", "alerts:ack")
    assert MATRIX["device"] == frozenset({"telemetry:write", "devices:read"})
    with pytest.raises(KeyError):
        allowed("admin", "no:such")


def test_valid_keys_are_reused_briefly_and_revocation_is_immediate(
    engine,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from sqlalchemy import update

    monkeypatch.setattr(api_keys, "AUTH_CACHE_SECONDS", 0.5)
    key_id, raw = api_keys.create_key(engine, None, "hot device")
    assert api_keys.authenticate(engine, raw) is not None
    # Revoked by another process (straight in the database): honoured once the cached look-up ages out.
    with engine.begin() as conn:
        conn.execute(
            update(api_keys_table).where(api_keys_table.c.id == key_id).values(revoked_at=datetime.now(UTC))
        )
    assert api_keys.authenticate(engine, raw) is not None
    time.sleep(0.6)
    assert api_keys.authenticate(engine, raw) is None
    # Revoked through this process: refused at once.
    other_id, other = api_keys.create_key(engine, None, "second")
    assert api_keys.authenticate(engine, other) is not None
    assert api_keys.revoke_key(engine, other_id)
    assert api_keys.authenticate(engine, other) is None


def test_a_cached_key_still_expires_on_time(engine) -> None:  # type: ignore[no-untyped-def]
    import time

    _, raw = api_keys.create_key(engine, None, "short", expires_at=datetime.now(UTC) + timedelta(seconds=1))
    assert api_keys.authenticate(engine, raw) is not None
    time.sleep(1.1)
    assert api_keys.authenticate(engine, raw) is None
