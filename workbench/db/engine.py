"""Engines and connection URLs: one place turns a configured URL into something to connect with."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from workbench.metrics import observe_engine


def sqlalchemy_url(url: str) -> str:
    """The URL with the psycopg 3 driver named, as SQLAlchemy wants it."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg.connect) takes it, without a driver name."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """An engine with a bounded pool that checks connections before use; its statements are timed."""
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        pool_recycle=1800,
    )
    observe_engine(engine)
    return engine


def has_timescale(engine: Engine) -> bool:
    """Whether the TimescaleDB extension can be (or is) installed on this server."""
    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).first()
    return found is not None
