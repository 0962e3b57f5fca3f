"""Quarantine: what ingest rejected, with its reason; listed and replayed by the API and the UI alike.

Replaying needs ingest's pipeline, which ``workbench`` never imports: whoever composes the platform puts a
:class:`Replayer` in ``platform.services.quarantine_replay`` (``ingest.http.connect_quarantine``).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy import Engine, String, cast, func, select

from workbench.auth.principal import Principal, authorize
from workbench.db.tables import devices, quarantine
from workbench.errors import ApiError
from workbench.platform import Platform

log = logging.getLogger(__name__)

READ, REPLAY = "quarantine:read", "quarantine:replay"
MAX_REPLAY = 10_000
MAX_LIST = 1000


class Replayer(Protocol):
    """Validate quarantined items again; write the now-valid ones; report replayed/still rejected."""

    def __call__(self, ids: list[int] | None, device_id: str | None) -> dict[str, Any]:
        """Replay the items with ``ids`` (or of ``device_id``, or all of them when both are None)."""


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_items(
    engine: Engine,
    actor: Principal | None,
    device_id: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    include_replayed: bool = False,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Quarantined items, newest first; ``reason`` matches part of the reason, any case; payloads as text."""
    authorize(actor, READ)
    query = select(quarantine).order_by(quarantine.c.id.desc()).limit(max(1, min(limit, MAX_LIST)))
    if device_id:
        query = query.where(quarantine.c.device_id == device_id)
    if reason:
        query = query.where(quarantine.c.reason.ilike(_like(reason), escape="\\"))
    if source:
        query = query.where(quarantine.c.source == source)
    if not include_replayed:
        query = query.where(quarantine.c.replayed_at.is_(None))
    if before_id:
        query = query.where(quarantine.c.id < before_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "id": row.id,
            "received_at": row.received_at,
            "source": row.source,
            "topic": row.topic,
            "device_id": row.device_id,
            "reason": row.reason,
            "payload": bytes(row.payload).decode("utf-8", "replace"),
            "replayed_at": row.replayed_at,
        }
        for row in rows
    ]


def devices_held(engine: Engine, actor: Principal | None) -> list[dict[str, Any]]:
    """The device ids with items waiting in quarantine, with the device's name when it exists, and counts."""
    authorize(actor, READ)
    named = quarantine.outerjoin(devices, cast(devices.c.id, String) == quarantine.c.device_id)
    query = (
        select(quarantine.c.device_id, devices.c.name, func.count().label("items"))
        .select_from(named)
        .where(quarantine.c.replayed_at.is_(None), quarantine.c.device_id.isnot(None))
        .group_by(quarantine.c.device_id, devices.c.name)
        .order_by(quarantine.c.device_id)
        .limit(MAX_LIST)
    )
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def replay(
    platform: Platform,
    actor: Principal | None,
    ids: list[int] | None = None,
    device_id: str | None = None,
    everything: bool = False,
) -> dict[str, Any]:
    """Validate the chosen items again (after a fix): the now-valid ones are written and marked replayed."""
    actor = authorize(actor, REPLAY)
    if not (ids or device_id or everything):
        raise ApiError(400, "bad_request", "name ids, a device_id, or all=true")
    if ids and len(ids) > MAX_REPLAY:
        raise ApiError(400, "bad_request", f"at most {MAX_REPLAY} ids at once")
    replayer: Replayer | None = platform.services.quarantine_replay
    if replayer is None:
        raise ApiError(
            503, "unavailable", "ingest does not run in this process: nothing can be replayed here"
        )
    try:
        result = replayer(ids or None, device_id)
    except TimeoutError as error:
        raise ApiError(503, "unavailable", str(error)) from None
    log.info(
        "quarantine replay by %s: %s replayed, %s still rejected",
        actor.id,
        result["replayed"],
        result["still_rejected"],
    )
    return result
