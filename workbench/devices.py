"""Devices' rules, once for the API and the UI: list and search, create, change, delete, config, test.

Every function takes the platform and the caller (a :class:`~workbench.auth.principal.Principal`), checks the
caller's permission, and raises :class:`~workbench.errors.ApiError` (403, 404, 422, 503) with the reason.
Changes are announced on the bus as :data:`~workbench.live.bus.DEVICES_CHANGED`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, delete, func, insert, literal, or_, select, update

from workbench.auth import api_keys
from workbench.auth.principal import Principal
from workbench.db.rows import update_returning
from workbench.db.tables import alerts, devices, latest_values, telemetry
from workbench.errors import ApiError
from workbench.live.bus import DEVICES_CHANGED
from workbench.platform import Platform
from workbench.protocols import config_errors
from workbench.secrets import DEVICE_CONFIG, merge, redact
from workbench.severity import SEVERITIES

STATUSES = ("online", "offline", "error", "maintenance", "degraded")
OPEN_ALERTS = ("active", "acknowledged")
# Columns the list sorts by (``alarm``: the worst open alarm's severity, then how many are open).
SORTS = ("name", "type", "area", "protocol", "status", "last_seen", "alarm")
FILTERS = ("type", "status", "area", "protocol")
MAX_PAGE_SIZE = 500
_RANK = {name: rank for rank, name in enumerate(SEVERITIES, start=1)}


def not_found(what: str, ident: uuid.UUID | str) -> ApiError:
    """The 404 of a missing resource."""
    return ApiError(404, "not_found", f"{what} {ident} not found")


def check_config(protocol: str | None, config: Any) -> None:
    """422 with field errors when ``config`` is not what a ``protocol`` connector can use."""
    errors = config_errors(protocol, config)
    if errors:
        details = {"fields": {"json": {"config": errors}}}
        raise ApiError(422, "unprocessable_entity", f"invalid {protocol} config", details)


def shown(row: dict[str, Any]) -> dict[str, Any]:
    """A device as every role reads it: its config's secrets only as ``{"set": true}``."""
    return {**row, "config": redact(row.get("config"), DEVICE_CONFIG)}


def _alarms(ids: list[uuid.UUID] | None = None) -> Any:
    """Per device with open alerts (of ``ids`` when given): the worst severity's rank and the open count."""
    rank = case(_RANK, value=alerts.c.severity, else_=0)
    query = (
        select(
            alerts.c.device_id,
            func.max(rank).label("alarm_rank"),
            func.count().label("open_alarms"),
        )
        .where(alerts.c.status.in_(OPEN_ALERTS), alerts.c.device_id.is_not(None))
        .group_by(alerts.c.device_id)
    )
    if ids is not None:
        query = query.where(alerts.c.device_id.in_(ids))
    return query.subquery("alarms")


def _rows(ids: list[uuid.UUID]) -> Select[Any]:
    """The devices ``ids`` in full, with their worst open alarm's rank and open alarm count."""
    alarms = _alarms(ids)
    return (
        select(
            devices,
            alarms.c.alarm_rank,
            func.coalesce(alarms.c.open_alarms, literal(0)).label("open_alarms"),
        )
        .select_from(devices.outerjoin(alarms, alarms.c.device_id == devices.c.id))
        .where(devices.c.id.in_(ids))
    )


def _where(principal: Principal, filters: dict[str, Any]) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [devices.c[k] == filters[k] for k in FILTERS if filters.get(k)]
    text = (filters.get("search") or "").strip()
    if text:
        where.append(
            or_(
                devices.c.name.icontains(text, autoescape=True),
                devices.c.location.icontains(text, autoescape=True),
            )
        )
    if principal.is_device:
        where.append(devices.c.id == principal.device_id)
    return where


def search(
    platform: Platform,
    principal: Principal,
    filters: dict[str, Any] | None = None,
    sort: str = "name",
    descending: bool = False,
    page: int = 1,
    page_size: int = 50,
) -> dict[str, Any]:
    """One page of devices matching ``filters`` (type, status, area, protocol, ``search`` in name or
    location), sorted by a column of :data:`SORTS`, each with its worst open alarm and their count."""
    principal.check("devices:read")
    if sort not in SORTS:
        raise ApiError(400, "bad_request", f"sort by one of {', '.join(SORTS)}", {"fields": {"sort": [sort]}})
    if not 1 <= page_size <= MAX_PAGE_SIZE or page < 1:
        raise ApiError(400, "bad_request", f"page >= 1 and page_size 1..{MAX_PAGE_SIZE}")
    where = _where(principal, filters or {})
    alarms = _alarms()
    rank = func.coalesce(alarms.c.alarm_rank, 0)
    key: Any = [rank, func.coalesce(alarms.c.open_alarms, 0)] if sort == "alarm" else [devices.c[sort]]
    ordered = [k.desc().nulls_last() if descending else k.asc().nulls_last() for k in key]
    source: Any = (
        devices.outerjoin(alarms, alarms.c.device_id == devices.c.id) if sort == "alarm" else devices
    )
    # The page's ids first (narrow rows sort fast; by name an index serves it), then those rows in full.
    ids = (
        select(devices.c.id)
        .select_from(source)
        .where(*where)
        .order_by(*ordered, devices.c.name, devices.c.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    with platform.read_engine().connect() as conn:
        total = conn.execute(select(func.count()).select_from(devices).where(*where)).scalar_one()
        chosen = list(conn.execute(ids).scalars())
        found = {row["id"]: dict(row) for row in conn.execute(_rows(chosen)).mappings()} if chosen else {}
    names = {rank: name for name, rank in _RANK.items()}
    items = []
    for ident in chosen:
        row = found[ident]
        row["alarm_severity"] = names.get(row.pop("alarm_rank") or 0)
        items.append(shown(row))
    return {"items": items, "page": page, "page_size": page_size, "total": total}


def facets(platform: Platform, principal: Principal) -> dict[str, list[str]]:
    """The values the list's filters offer: every type, area and protocol in use, and the statuses."""
    principal.check("devices:read")
    found: dict[str, list[str]] = {"status": list(STATUSES)}
    with platform.read_engine().connect() as conn:
        for name in ("type", "area", "protocol"):
            column = devices.c[name]
            query = select(column).where(column.is_not(None)).distinct().order_by(column)
            found[name] = [value for (value,) in conn.execute(query)]
    return found


def get(platform: Platform, principal: Principal, device_id: uuid.UUID) -> dict[str, Any]:
    """One device (secrets in its config shown as set); 404 when absent or not the caller's own."""
    principal.check("devices:read")
    return shown(stored(platform, principal, device_id))


def stored(platform: Platform, principal: Principal, device_id: uuid.UUID) -> dict[str, Any]:
    """The device's row as stored (sealed secrets; for delivery, never shown); 404 as :func:`get`."""
    with platform.engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.id == device_id)).mappings().first()
    if row is None or not principal.may_touch_device(device_id):
        raise not_found("device", device_id)
    return dict(row)


def _sealed(platform: Platform, config: Any, stored: Any) -> Any:
    """The config to store for a write of ``config`` over ``stored`` (secrets kept, sealed)."""
    return merge(config, stored, DEVICE_CONFIG, platform.settings.resolved_secret_key())


def create(
    platform: Platform, principal: Principal, fields: dict[str, Any], rate_limit: int = 1000
) -> dict[str, Any]:
    """Register a device (``fields``: name, type, and optional columns); the answer carries its API key
    (``api_key``, shown this once) and ``api_key_id``."""
    principal.check("devices:write")
    body = dict(fields)
    check_config(body.get("protocol"), body.get("config"))
    if "config" in body:
        body["config"] = _sealed(platform, body["config"], None)
    with platform.engine.begin() as conn:
        row = conn.execute(insert(devices).values(**body).returning(devices)).mappings().one()
    key_id, raw = api_keys.create_key(platform.engine, row["id"], f"{row['name']} key", rate_limit=rate_limit)
    platform.bus.publish(DEVICES_CHANGED, {"id": str(row["id"]), "change": "created"})
    return {**shown(dict(row)), "api_key": raw, "api_key_id": key_id}


def change(
    platform: Platform, principal: Principal, device_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change a device's fields (only those given); config secrets not sent are kept."""
    principal.check("devices:write")
    current = stored(platform, principal, device_id)
    body = dict(changes)
    if "protocol" in body or "config" in body:
        check_config(body.get("protocol", current["protocol"]), body.get("config", current["config"]))
    if "config" in body:
        body["config"] = _sealed(platform, body["config"], current["config"])
    row = update_returning(platform.engine, devices, device_id, body)
    if row is None:
        raise not_found("device", device_id)
    platform.bus.publish(DEVICES_CHANGED, {"id": str(device_id), "change": "changed"})
    return shown(dict(row))


def remove(platform: Platform, principal: Principal, device_id: uuid.UUID) -> None:
    """Delete a device, its keys, latest values and telemetry (telemetry has no foreign key)."""
    principal.check("devices:write")
    stored(platform, principal, device_id)
    # Revoked first, not just cascaded away: key hooks (the MQTT broker's logins) must hear of it.
    api_keys.revoke_device_keys(platform.engine, device_id)
    with platform.engine.begin() as conn:
        if not conn.execute(delete(devices).where(devices.c.id == device_id)).rowcount:
            raise not_found("device", device_id)
        conn.execute(delete(telemetry).where(telemetry.c.device_id == device_id))
    platform.bus.publish(DEVICES_CHANGED, {"id": str(device_id), "change": "deleted"})


def status(platform: Platform, principal: Principal, device_id: uuid.UUID) -> dict[str, Any]:
    """Connection state, last contact and how many keys the device reports."""
    principal.check("devices:read")
    device = stored(platform, principal, device_id)
    with platform.engine.connect() as conn:
        keys, latest = conn.execute(
            select(func.count(), func.max(latest_values.c.timestamp)).where(
                latest_values.c.device_id == device_id
            )
        ).one()
    return {
        "id": device_id,
        "status": device["status"],
        "status_detail": device["status_detail"],
        "last_seen": device["last_seen"],
        "keys": keys,
        "latest_timestamp": latest,
    }


def publish(platform: Platform, topic: str, payload: Any, retain: bool) -> None:
    """Publish through the platform's broker connection; 503 when there is none."""
    mqtt = platform.mqtt
    if mqtt is None or not mqtt.connected:
        raise ApiError(503, "broker_unavailable", "no MQTT broker connected; try again later")
    try:
        mqtt.publish(topic, payload, qos=1, retain=retain)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ApiError(503, "broker_unavailable", f"MQTT publish failed: {error}") from None


def push_config(
    platform: Platform, principal: Principal, device_id: uuid.UUID, config: dict[str, Any]
) -> dict[str, Any]:
    """Store the device's config and publish it retained to ``insa/devices/{id}/config`` (503: no broker).

    Secrets in it are stored sealed and published (and answered) only as ``{"set": true}``.
    """
    principal.check("devices:write")
    current = stored(platform, principal, device_id)
    check_config(current["protocol"], config)
    sealed = _sealed(platform, config, current["config"])
    topic = f"insa/devices/{device_id}/config"
    payload = {
        "timestamp": datetime.now(UTC).isoformat(),
        "device_id": str(device_id),
        "config": redact(sealed, DEVICE_CONFIG),
    }
    publish(platform, topic, payload, retain=True)
    with platform.engine.begin() as conn:
        conn.execute(
            update(devices)
            .where(devices.c.id == device_id)
            .values(config=sealed, updated_at=datetime.now(UTC))
        )
    platform.bus.publish(DEVICES_CHANGED, {"id": str(device_id), "change": "config"})
    return {"topic": topic, "payload": payload}


def try_connection(
    platform: Platform,
    principal: Principal,
    protocol: str,
    config: dict[str, Any],
    connection_string: str | None = None,
) -> list[dict[str, Any]]:
    """Read a (not yet saved) connector config once: the values as ``{key, value, unit, quality}``.

    422 when the config is invalid, 502 naming the error (``ConnectionError: ...``) when the read fails,
    501 when this process has no probe for the protocol.
    """
    principal.check("devices:write")
    check_config(protocol, config)
    probe = platform.services.probe
    if probe is None:
        raise ApiError(501, "not_implemented", "this process cannot test connections")
    try:
        values: list[dict[str, Any]] = probe(protocol, connection_string, config)
    except LookupError as error:
        raise ApiError(422, "unprocessable_entity", str(error)) from None
    except Exception as error:  # the device's own failure, shown by name to the person testing it
        raise ApiError(502, "connection_failed", f"{type(error).__name__}: {error}") from None
    return values
