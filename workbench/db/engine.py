"""Engines and connection URLs: one place turns a configured URL into something to connect with."""

from __future__ import annotations

import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from workbench.metrics import observe_engine

# Seconds to wait for a connection (libpq connect, or a free pool slot) unless the caller says otherwise.
CONNECT_TIMEOUT = 3.0


def sqlalchemy_url(url: str) -> str:
    """The URL with the psycopg 3 driver named, as SQLAlchemy wants it."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg.connect) takes it, without a driver name."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str, pool_size: int = 10, timeout: float = CONNECT_TIMEOUT) -> Engine:
    """A bounded pool checking connections before use (they survive DB restarts); statements are timed.

    Connecting and waiting for a pool slot each give up after ``timeout`` seconds, so a database
    that is down or saturated fails a request quickly (the API answers 503) instead of holding it.
    """
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=timeout,
        connect_args={"connect_timeout": max(2, round(timeout))},  # libpq: whole seconds, at least 2
    )
    observe_engine(engine)
    return engine


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the database could not be reached (worth retrying), not that it refused data."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    # Raised by psycopg itself on a raw connection (binary COPY), outside SQLAlchemy's wrapping.
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def has_timescale(engine: Engine) -> bool:
    """Whether the TimescaleDB extension can be (or is) installed on this server."""
    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).first()
    return found is not None
