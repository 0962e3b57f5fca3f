"""The shared auth fixtures give working identities for every role and a device key."""

from __future__ import annotations

from flask import Flask

from tests.workbench.api.fixtures import ALL_CALLERS, ApiDevice
from workbench.auth import api_keys, tokens
from workbench.platform import EXTENSION


def test_every_caller_has_headers(app: Flask, auth_headers: dict[str, dict[str, str]]) -> None:
    assert set(auth_headers) == set(ALL_CALLERS)
    assert auth_headers["anonymous"] == {}
    for role in ("admin", "engineer", "operator", "viewer"):
        token = auth_headers[role]["Authorization"].removeprefix("Bearer ")
        assert tokens.decode(app.config["SECRET_KEY"], token)["role"] == role


def test_device_key_authenticates_as_its_device(app: Flask, api_device: ApiDevice) -> None:
    key = api_keys.authenticate(app.extensions[EXTENSION].engine, api_device.api_key)
    assert key is not None and key.device_id == api_device.id
