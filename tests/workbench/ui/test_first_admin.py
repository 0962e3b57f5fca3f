"""A fresh installation's sign-in page says how to create the first administrator."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

from tests.conftest import _with_database, free_port
from workbench.auth.users import create_user
from workbench.db.embedded import ensure_database
from workbench.db.engine import libpq_url
from workbench.db.migrate import upgrade
from workbench.platform import EXTENSION
from workbench.settings import Settings


def test_sign_in_page_tells_how_to_create_the_first_admin(postgres_server_url: str, tmp_path: Path) -> None:
    from app import create_app

    name = f"wb_fresh_{uuid.uuid4().hex[:10]}"
    ensure_database(postgres_server_url, name)
    url = _with_database(postgres_server_url, name)
    try:
        upgrade(url)
        app = create_app(Settings.from_env({}, database_url=url, data_dir=tmp_path, port=free_port()))
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        assert "No administrator exists yet" in page
        assert "workbench user create --email you@example.com --role admin" in page

        engine = app.extensions[EXTENSION].engine
        create_user(engine, "viewer@example.com", "viewer", "viewer-password")
        assert "No administrator exists yet" in client.get("/login").get_data(as_text=True)
        create_user(engine, "boss@example.com", "admin", "admin-password")
        assert "No administrator exists yet" not in client.get("/login").get_data(as_text=True)
        engine.dispose()
    finally:
        with psycopg.connect(libpq_url(postgres_server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
