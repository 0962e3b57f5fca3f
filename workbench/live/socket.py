"""Socket.IO fan-out (design §4): authenticated clients subscribe to rooms fed from the event bus."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from flask import Flask, current_app, request
from flask_socketio import SocketIO, join_room, leave_room
from socketio import Manager
from socketio import exceptions as socketio_exceptions

from workbench.auth import access, service_tokens, tokens
from workbench.auth.guard import service_principal, session_principal, token_principal
from workbench.auth.permissions import allowed
from workbench.live.bus import ALERT, ALERT_UPDATE, DEVICE_STATUS, TELEMETRY_BATCH
from workbench.live.events import DeviceStatus, TelemetryBatch
from workbench.metrics import SOCKET_CONNECTIONS
from workbench.periodic import Periodic
from workbench.platform import Platform
from workbench.severity import SEVERITIES

log = logging.getLogger(__name__)

# What a subscription of each type needs from the role matrix.
SUBSCRIPTION_PERMISSION = {"device": "telemetry:read", "alerts": "alerts:read", "devices": "devices:read"}
QUEUE_LIMIT = 20_000
SERVICE = "live"
# How often connected clients' users are checked: a deleted, disabled or changed user's socket ends within it.
ACCESS_SWEEP_S = 5.0
# How often connected clients' tokens are checked; an expired one is told why, then disconnected.
EXPIRY_CHECK_S = 1.0
AUTH_EXPIRED = "auth_expired"


@dataclass
class Client:
    """One connected, authenticated Socket.IO client."""

    user_id: str
    role: str
    email: str | None
    rooms: set[str] = field(default_factory=set)
    token_version: int = 0  # the user's epoch at connect; the access sweep disconnects it once it moves on
    scopes: frozenset[str] | None = None  # a service token's: its permissions (None for users)
    expires_at: float | None = None  # the token's ``exp`` (Unix seconds); None for a UI session

    def may(self, permission: str) -> bool:
        """Whether this client holds ``permission`` (its role's, or its service token's scopes)."""
        return permission in self.scopes if self.scopes is not None else allowed(self.role, permission)


class Refused(socketio_exceptions.ConnectionRefusedError):
    """A refused connection; the client's ``connect_error`` carries ``{"message": reason}``."""


def telemetry_room(device_id: str, key: str | None = None) -> str:
    """Room of one device's telemetry, for one key or (``None``) every key."""
    return f"telemetry:{device_id}:{key or '*'}"


def device_room(device_id: str) -> str:
    """Room of everyone following one device (status changes)."""
    return f"device:{device_id}"


def alert_room(severity: str | None) -> str:
    """Room of alerts of one severity, or (``None``) of every severity."""
    return f"alerts:{severity or '*'}"


def alert_updates_room(severity: str | None) -> str:
    """Room of alert status changes of one severity, or (``None``) of every severity."""
    return f"alerts:updates:{severity or '*'}"


STATUS_ROOM = "devices:status"
ALERT_UPDATES_ROOM = alert_updates_room(None)


class RateMeter:
    """Points per second over a sliding window, fed by the bus."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        """Record ``count`` points now."""
        now = time.monotonic()
        with self._lock:
            self._samples.append((now, count))
            self._trim(now)

    def rate(self) -> float:
        """Points per second over the window."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            return sum(count for _, count in self._samples) / self.window

    def _trim(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self.window:
            self._samples.popleft()


class LiveServer:
    """The Socket.IO server of one web process: auth, subscriptions, and the bus-to-rooms fan-out."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        # Options go to init_app: passing message_queue here would bind a write-only server at once.
        self.socketio = SocketIO()
        self.clients: dict[str, Client] = {}
        self.meter = RateMeter()
        self.dropped = 0
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._unsubscribe: list[Any] = []
        self._worker: threading.Thread | None = None
        # Called with (event, data) right after each emit: the latency benchmark stamps its stages here.
        self.emit_hooks: list[Callable[[str, dict[str, Any]], None]] = []
        self._register_handlers()

    def init_app(self, app: Flask) -> None:
        """Bind to the Flask app and start feeding rooms from the platform's bus."""
        options: dict[str, Any] = {
            "async_mode": "threading",
            "cors_allowed_origins": [],
            "logger": False,
            "engineio_logger": False,
        }
        if self.platform.settings.redis_url:
            options.update(message_queue=self.platform.settings.redis_url, channel="workbench-socketio")
        self.socketio.init_app(app, **options)
        self.platform.services.live = self
        bus = self.platform.bus
        for topic in (TELEMETRY_BATCH, DEVICE_STATUS, ALERT, ALERT_UPDATE):
            self._unsubscribe.append(bus.subscribe(topic, self._enqueue))
        self._worker = threading.Thread(target=self._drain, name="socketio-fanout", daemon=True)
        self._worker.start()
        self._access_sweep = Periodic("socketio-access", ACCESS_SWEEP_S, self.drop_ended_users).start()
        threading.Thread(target=self._expire_tokens, name="socketio-expiry", daemon=True).start()

    def drop_ended_users(self) -> int:
        """Disconnect clients whose user was removed, disabled or changed since they connected."""
        connected = {sid: client for sid, client in list(self.clients.items())}
        if not connected:
            return 0
        people = {(c.user_id, c.token_version) for c in connected.values() if c.scopes is None}
        holding = access.users_holding(self.platform.engine, people)
        machines = {c.user_id for c in connected.values() if c.scopes is not None}
        holding |= {(token_id, 0) for token_id in service_tokens.valid_ids(self.platform.engine, machines)}
        dropped = 0
        for sid, client in connected.items():
            if (client.user_id, client.token_version) not in holding and self.socketio.server is not None:
                self.socketio.server.disconnect(sid)
                dropped += 1
        return dropped

    def _expire_tokens(self) -> None:
        """Tell clients whose token expired why (``auth_expired``), then disconnect them."""
        while True:
            time.sleep(EXPIRY_CHECK_S)
            now = time.time()
            for sid, client in list(self.clients.items()):
                if client.expires_at is not None and client.expires_at <= now:
                    try:
                        self.socketio.emit(AUTH_EXPIRED, {"reason": "token expired"}, to=sid)
                        self.socketio.server.disconnect(sid, namespace="/")
                    except Exception:  # the client left meanwhile
                        log.debug("expiring %s failed", sid, exc_info=True)
                    if self.clients.pop(sid, None) is not None:
                        SOCKET_CONNECTIONS.dec()

    # -- bus side ---------------------------------------------------------------------------------------

    def _enqueue(self, topic: str, payload: Any) -> None:
        # Telemetry and status are emitted at once, on the publisher's thread: emitting only queues
        # packets on each client's socket (a slow browser never blocks the publisher), and skipping the
        # hand-over to the fan-out thread saves a thread wake-up and a GIL hand-off on a busy machine.
        # Alerts may go through Redis (a network call): those are handed to the fan-out thread.
        if topic == TELEMETRY_BATCH and isinstance(payload, TelemetryBatch):
            self.meter.add(len(payload.frame))
            # Keep only points someone here watches: a busy plant's batches are mostly unwatched, and
            # grouping them into events nobody receives would cost the publisher's thread for nothing.
            watched = self._watched_devices()
            if not watched:
                return
            frame = payload.frame
            mask = frame["device_id"].isin(watched)
            if not mask.any():
                return
            payload = replace(payload, frame=frame[mask])
        if topic in (TELEMETRY_BATCH, DEVICE_STATUS):
            try:
                self.fan_out(topic, payload)
            except Exception:
                log.exception("socket.io fan-out failed on %s", topic)
            return
        try:
            self._queue.put_nowait((topic, payload))
        except queue.Full:
            self.dropped += 1

    def _drain(self) -> None:
        while True:
            topic, payload = self._queue.get()
            try:
                self.fan_out(topic, payload)
            except Exception:
                log.exception("socket.io fan-out failed on %s", topic)

    def fan_out(self, topic: str, payload: Any) -> None:
        """Emit one bus event to the rooms that asked for it."""
        # Telemetry and status reach every web process through the Redis bus bridge, so each process
        # serves its own clients; alerts are raised in one process and travel the Socket.IO queue.
        if topic == TELEMETRY_BATCH:
            for event, rooms in telemetry_events(payload):
                self._emit("telemetry", event, rooms, everywhere=False)
        elif topic == DEVICE_STATUS:
            event = status_event(payload)
            rooms = [device_room(event["device_id"]), STATUS_ROOM]
            self._emit("device_status", event, rooms, everywhere=False)
        elif topic == ALERT:
            event = jsonable(_as_dict(payload))
            severity = event.get("severity")
            self._emit("alert", event, [alert_room(None), alert_room(severity)], everywhere=True)
        elif topic == ALERT_UPDATE:
            event = jsonable(_as_dict(payload))
            rooms = [ALERT_UPDATES_ROOM, alert_updates_room(event.get("severity"))]
            self._emit("alert_update", event, rooms, everywhere=True)

    def _emit(self, event: str, data: dict[str, Any], rooms: list[str], everywhere: bool) -> None:
        if everywhere and self.platform.settings.redis_url:
            self.socketio.emit(event, data, to=rooms)  # through Redis to every web process
            return
        if not self._has_listeners(rooms):
            return
        # The plain Manager.emit serves this process's clients only, even when the manager is Redis's.
        Manager.emit(self.socketio.server.manager, event, data, namespace="/", to=rooms)
        for hook in self.emit_hooks:
            hook(event, data)

    def _watched_devices(self) -> set[str]:
        present = self.socketio.server.manager.rooms.get("/", {}) if self.socketio.server else {}
        return {
            room.split(":")[1]
            for room, members in list(present.items())
            if isinstance(room, str) and room.startswith("telemetry:") and members
        }

    def _has_listeners(self, rooms: list[str]) -> bool:
        present = self.socketio.server.manager.rooms.get("/", {}) if self.socketio.server else {}
        return any(present.get(room) for room in rooms)

    # -- client side ------------------------------------------------------------------------------------

    def _register_handlers(self) -> None:
        sio = self.socketio
        sio.on_event("connect", self._on_connect)
        sio.on_event("disconnect", self._on_disconnect)
        sio.on_event("subscribe", self._on_subscribe)
        sio.on_event("unsubscribe", self._on_unsubscribe)
        sio.on_event("refresh_token", self._on_refresh)

    def _on_connect(self, auth: dict[str, Any] | None = None) -> bool:
        client = self._authenticate(auth)  # raises Refused: the client's connect_error says why
        self.clients[request.sid] = client  # type: ignore[attr-defined]
        SOCKET_CONNECTIONS.inc()
        return True

    def _on_refresh(self, data: Any) -> dict[str, Any]:
        """A fresh access token for the same user: the connection and its subscriptions stay."""
        client = self.clients.get(request.sid)  # type: ignore[attr-defined]
        if client is None:
            return {"ok": False, "error": "not authenticated"}
        token = data.get("token") if isinstance(data, dict) else None
        try:
            fresh = self._from_token(str(token or ""))
        except Refused as error:
            return {"ok": False, "error": str(error)}
        if fresh.user_id != client.user_id:
            return {"ok": False, "error": "the token is another user's"}
        client.role, client.email, client.expires_at = fresh.role, fresh.email, fresh.expires_at
        client.token_version = fresh.token_version
        return {"ok": True, "expires_at": fresh.expires_at, "rooms": sorted(client.rooms)}

    def _on_disconnect(self, reason: Any = None) -> None:
        if self.clients.pop(request.sid, None) is not None:  # type: ignore[attr-defined]
            SOCKET_CONNECTIONS.dec()

    def _authenticate(self, auth: dict[str, Any] | None) -> Client:
        token = (auth or {}).get("token") if isinstance(auth, dict) else None
        token = token or request.args.get("token")
        if token and service_tokens.is_service_token(str(token)):
            service = service_principal(str(token))
            if service is None:
                raise Refused("unauthorized: service token revoked, expired or unknown")
            return Client(str(service.id), "service", None, scopes=frozenset(service.claims["scopes"]))
        if token:
            return self._from_token(str(token))
        principal = session_principal()
        if principal is None:
            raise Refused("unauthorized: no token and no session")
        version = int(principal.claims.get("ver", -1))
        return Client(str(principal.id), principal.role, principal.email, token_version=version)

    def _from_token(self, token: str) -> Client:
        try:
            claims = tokens.decode(current_app.config["SECRET_KEY"], token)
        except tokens.TokenError as error:
            reason = str(error)
            raise Refused(reason if reason == "token expired" else f"unauthorized: {reason}") from None
        principal = token_principal(claims)
        if principal is None:
            raise Refused("unauthorized: token revoked, or its user was changed, disabled or removed")
        return Client(
            user_id=str(principal.id),
            role=principal.role,
            email=principal.email,
            token_version=int(claims.get("ver", -1)),
            expires_at=float(claims["exp"]),
        )

    def _on_subscribe(self, data: Any) -> dict[str, Any]:
        client = self.clients.get(request.sid)  # type: ignore[attr-defined]
        if client is None:
            return {"ok": False, "error": "not authenticated"}
        try:
            rooms = subscription_rooms(data)
        except ValueError as error:
            return {"ok": False, "error": str(error)}
        permission = SUBSCRIPTION_PERMISSION[data["type"]]
        if not client.may(permission):
            return {"ok": False, "error": f"role {client.role} lacks {permission}"}
        for room in rooms:
            join_room(room)
            client.rooms.add(room)
        return {"ok": True, "rooms": sorted(rooms)}

    def _on_unsubscribe(self, data: Any) -> dict[str, Any]:
        client = self.clients.get(request.sid)  # type: ignore[attr-defined]
        if client is None:
            return {"ok": False, "error": "not authenticated"}
        try:
            wanted = unsubscription_prefixes(data)
        except ValueError as error:
            return {"ok": False, "error": str(error)}
        left = sorted(room for room in client.rooms if room.startswith(wanted))
        for room in left:
            leave_room(room)
            client.rooms.discard(room)
        return {"ok": True, "rooms": left}


def subscription_rooms(data: Any) -> set[str]:
    """The rooms a ``subscribe`` message asks for; ValueError when it is malformed."""
    if not isinstance(data, dict) or data.get("type") not in SUBSCRIPTION_PERMISSION:
        raise ValueError(f"type must be one of {', '.join(SUBSCRIPTION_PERMISSION)}")
    kind = data["type"]
    if kind == "device":
        device_id = _device_id(data)
        keys = data.get("keys") or []
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise ValueError("keys must be a list of strings")
        telemetry = {telemetry_room(device_id, key) for key in keys} or {telemetry_room(device_id)}
        return telemetry | {device_room(device_id)}
    if kind == "alerts":
        severities = data.get("severity") or []
        if isinstance(severities, str):
            severities = [severities]
        unknown = [s for s in severities if s not in SEVERITIES]
        if unknown:
            raise ValueError(f"unknown severity {unknown[0]!r}")
        wanted = severities or [None]
        return {alert_room(s) for s in wanted} | {alert_updates_room(s) for s in wanted}
    return {STATUS_ROOM}


def unsubscription_prefixes(data: Any) -> tuple[str, ...]:
    """Room-name prefixes an ``unsubscribe`` message leaves."""
    if not isinstance(data, dict) or data.get("type") not in SUBSCRIPTION_PERMISSION:
        raise ValueError(f"type must be one of {', '.join(SUBSCRIPTION_PERMISSION)}")
    if data["type"] == "device":
        device_id = _device_id(data)
        return (f"telemetry:{device_id}:", device_room(device_id))
    if data["type"] == "alerts":
        return ("alerts:",)
    return (STATUS_ROOM,)


def _device_id(data: dict[str, Any]) -> str:
    try:
        return str(uuid.UUID(str(data.get("device_id"))))
    except ValueError:
        raise ValueError("device_id must be a UUID") from None


def iso_stamps(frame: pd.DataFrame) -> list[str]:
    """The frame's timestamps as ISO 8601 UTC strings (``...T10:00:00.250000+00:00``), vectorized."""
    micros = frame["timestamp"].to_numpy(dtype="datetime64[ns]").astype("datetime64[us]")
    # As datetime.isoformat(): no fraction when it is zero.
    texts = np.datetime_as_string(micros).tolist()
    return [s[:-7] + "+00:00" if s.endswith(".000000") else s + "+00:00" for s in texts]


def telemetry_events(batch: TelemetryBatch) -> list[tuple[dict[str, Any], list[str]]]:
    """One ``telemetry`` event per (device, key) of a batch: the last point plus every point in ``points``."""
    frame = batch.frame
    if frame.empty:
        return []
    # Plain lists and a dict beat a pandas sort and groupby several times over on the small, watched
    # part of a batch that reaches here; this runs on the publisher's thread (see LiveServer._enqueue).
    stamps = iso_stamps(frame)
    order = np.argsort(frame["timestamp"].to_numpy(dtype="datetime64[ns]"), kind="stable").tolist()
    devices, keys = frame["device_id"].tolist(), frame["key"].tolist()
    values = [None if isinstance(v, float) and math.isnan(v) else v for v in frame["value"].tolist()]
    units, qualities = frame["unit"].tolist(), frame["quality"].tolist()
    groups: dict[tuple[str, str], list[int]] = {}
    for index in order:
        groups.setdefault((devices[index], keys[index]), []).append(index)
    out: list[tuple[dict[str, Any], list[str]]] = []
    for (device_id, key), rows in groups.items():
        last = rows[-1]
        unit, quality = units[last], qualities[last]
        event = {
            "device_id": str(device_id),
            "key": str(key),
            "timestamp": stamps[last],
            "value": values[last],
            "unit": None if unit is None or unit != unit else str(unit),
            "quality": None if quality is None or quality != quality else int(quality),
            "points": [[stamps[i], values[i]] for i in rows],
        }
        out.append((event, [telemetry_room(str(device_id), str(key)), telemetry_room(str(device_id))]))
    return out


def status_event(status: DeviceStatus | dict[str, Any]) -> dict[str, Any]:
    """The ``device_status`` payload {device_id, status, timestamp}."""
    data = _as_dict(status)
    return jsonable(
        {"device_id": data["device_id"], "status": data["status"], "timestamp": data["timestamp"]}
    )


def _as_dict(payload: Any) -> dict[str, Any]:
    if isinstance(payload, dict):
        return dict(payload)
    if hasattr(payload, "__dataclass_fields__"):
        return {name: getattr(payload, name) for name in payload.__dataclass_fields__}
    raise TypeError(f"cannot emit {type(payload).__name__}")


def jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """Datetimes as ISO 8601, UUIDs as strings; the rest as is."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, datetime):
            out[name] = value.isoformat()
        elif isinstance(value, uuid.UUID):
            out[name] = str(value)
        elif isinstance(value, dict):
            out[name] = jsonable(value)
        else:
            out[name] = value
    return out


def live_server(platform: Platform) -> LiveServer | None:
    """The platform's live server, when one was started."""
    return platform.services.live
