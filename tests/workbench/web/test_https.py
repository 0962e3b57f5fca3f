"""Behind a proxy: forwarded headers trusted only with TRUSTED_PROXIES; HTTPS gets HSTS and Secure cookies."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask

from workbench.settings import Settings

FORWARDED_HTTPS = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Host": "wb.example",
}


@pytest.fixture(scope="module")
def proxied(settings: Settings) -> Flask:
    """An app that trusts one proxy hop."""
    from app import create_app

    return create_app(replace(settings, trusted_proxies=1))


def test_https_through_a_trusted_proxy_gets_hsts_and_secure_cookies(proxied: Flask) -> None:
    answer = proxied.test_client().get("/login", headers=FORWARDED_HTTPS)
    assert answer.status_code == 200
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    cookies = answer.headers.getlist("Set-Cookie")
    assert cookies and all("; Secure" in cookie for cookie in cookies)


def test_plain_http_through_the_proxy_gets_neither(proxied: Flask) -> None:
    answer = proxied.test_client().get("/login", headers={"X-Forwarded-Proto": "http"})
    assert "Strict-Transport-Security" not in answer.headers
    assert all("Secure" not in cookie for cookie in answer.headers.getlist("Set-Cookie"))


def test_forwarded_headers_are_ignored_without_a_trusted_proxy(app: Flask) -> None:
    # A client talking to the server directly cannot claim HTTPS (nor another address) by a header.
    answer = app.test_client().get("/login", headers=FORWARDED_HTTPS)
    assert "Strict-Transport-Security" not in answer.headers
    assert all("Secure" not in cookie for cookie in answer.headers.getlist("Set-Cookie"))


def test_served_over_https_directly(app: Flask) -> None:
    answer = app.test_client().get("/login", base_url="https://localhost")
    assert "max-age=31536000" in answer.headers["Strict-Transport-Security"]
    assert all("; Secure" in cookie for cookie in answer.headers.getlist("Set-Cookie"))


def test_socketio_responses_over_https_get_hsts_too(app: Flask, proxied: Flask) -> None:
    # engine.io answers its handshake outside Flask's views (its own WSGI middleware): HSTS covers it too.
    handshake = "/socket.io/?EIO=4&transport=polling"
    direct = app.test_client().get(handshake, base_url="https://localhost")
    assert direct.status_code == 200 and direct.get_data(as_text=True).startswith("0{")
    assert "max-age=31536000" in direct.headers["Strict-Transport-Security"]
    forwarded = proxied.test_client().get(handshake, headers=FORWARDED_HTTPS)
    assert forwarded.status_code == 200
    assert "max-age=31536000" in forwarded.headers["Strict-Transport-Security"]
    plain = app.test_client().get(handshake)
    assert plain.status_code == 200 and "Strict-Transport-Security" not in plain.headers
