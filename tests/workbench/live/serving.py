"""Run a real app (Flask + Socket.IO over Werkzeug's threaded server) on a free port for a test."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from flask import Flask
from sqlalchemy import Engine
from werkzeug.serving import make_server

from tests.conftest import free_port
from workbench.auth.users import create_user


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:<free port>; yields the base URL."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/login", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    try:
        yield base
    finally:
        server.shutdown()


def make_user(engine: Engine, role: str, password: str = "correct horse battery") -> tuple[str, str]:
    """A fresh user of ``role``; returns (email, password)."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    create_user(engine, email, role, password)
    return email, password
