"""Quarantine replay: validate what ingest rejected again after a fix (new device, declared text key...).

Listing and the permission checks are :mod:`workbench.quarantine`'s; this is the part that needs the pipeline.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from ingest.codecs import DecodeError
from ingest.pipeline import Pipeline
from ingest.points import Reading
from ingest.push.registry import codec_for
from ingest.writer import WorkItem
from workbench.db.tables import quarantine
from workbench.quarantine import MAX_REPLAY


def _decode(topic: str | None, payload: bytes) -> tuple[list[Reading], tuple[str, str] | None]:
    try:
        codec = codec_for(topic)
    except KeyError:
        raise DecodeError(f"no codec decodes topic {str(topic)[:200]!r}") from None
    decoded = codec.decode(topic or "", payload)
    return decoded.readings, decoded.status


def replay(
    engine: Engine, pipeline: Pipeline, ids: list[int] | None, device_id: str | None, timeout: float = 60.0
) -> dict[str, Any]:
    """Re-validate quarantined items; those now fully valid are written and marked replayed.

    An item still invalid stays in quarantine with its reason brought up to date (no duplicate row).
    """
    query = select(quarantine).where(quarantine.c.replayed_at.is_(None)).order_by(quarantine.c.id)
    if ids:
        query = query.where(quarantine.c.id.in_(ids))
    if device_id:
        query = query.where(quarantine.c.device_id == device_id)
    with engine.connect() as conn:
        rows = conn.execute(query.limit(MAX_REPLAY)).all()
    pipeline.directory.forget()  # the fix may be a new device or a new text key
    good: list[Any] = []
    replayed: list[int] = []
    statuses: list[tuple[str, str]] = []
    still: list[dict[str, Any]] = []
    for row in rows:
        try:
            readings, status = _decode(row.topic, bytes(row.payload))
        except DecodeError as error:
            still.append({"id": row.id, "reason": str(error)})
            continue
        result = pipeline.validator.validate(readings)
        if result.rejected:
            still.append({"id": row.id, "reason": result.rejected[0][1]})
            continue
        good.extend(result.rows)
        if status is not None:
            statuses.append(status)
        replayed.append(row.id)
    if replayed:
        done = threading.Event()
        pipeline.writer.put(WorkItem("replay", good, [], statuses, done.set))
        if not done.wait(timeout):
            raise TimeoutError("replayed points queued but not committed in time")
    with engine.begin() as conn:
        if replayed:
            conn.execute(
                update(quarantine).where(quarantine.c.id.in_(replayed)).values(replayed_at=datetime.now(UTC))
            )
        for item in still:
            conn.execute(
                update(quarantine).where(quarantine.c.id == item["id"]).values(reason=item["reason"])
            )
    return {
        "replayed": len(replayed),
        "points": len(good),
        "still_rejected": len(still),
        "errors": still[:100],
    }
