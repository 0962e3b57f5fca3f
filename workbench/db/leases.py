"""Schedule leases: each due time of a schedule runs once across every process (rules, notebooks, reports).

Whoever's insert of ``(name, due_at)`` into ``schedule_leases`` lands wins; the others' do nothing.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert

from workbench.db.tables import schedule_leases

HOST = f"{socket.gethostname()}:{os.getpid()}"


def holder_name(prefix: str = HOST) -> str:
    """A holder name unique to one scheduler of this process (``prefix`` and a random suffix)."""
    return f"{prefix}:{uuid.uuid4().hex[:6]}"


def claim(conn: Connection, name: str, due_at: datetime, holder: str = HOST) -> bool:
    """Claim ``(name, due_at)`` inside the caller's transaction; True for exactly one caller."""
    statement = (
        pg_insert(schedule_leases)
        .values(name=name, due_at=due_at, holder=holder)
        .on_conflict_do_nothing(index_elements=[schedule_leases.c.name, schedule_leases.c.due_at])
        .returning(schedule_leases.c.name)
    )
    return conn.execute(statement).first() is not None


def take_lease(engine: Engine, name: str, due_at: datetime, holder: str = HOST) -> bool:
    """Claim ``(name, due_at)`` in a transaction of its own; True for exactly one caller across processes."""
    with engine.begin() as conn:
        return claim(conn, name, due_at, holder)
