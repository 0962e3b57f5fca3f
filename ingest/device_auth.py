"""Device authentication on the broker: a password file and an ACL file the platform maintains.

Each device logs in with its id as user name and an API key as password, and may publish only under
``insa/devices/{its id}/`` (telemetry, status) and read only its config and commands. A Sparkplug B edge
node logs in with its node id as user name and the API key of its node's device row (connection string
``spBv1.0/{group}/{node}``), and may publish only as that node. The platform's own clients log in as
``workbench`` with a generated password kept in the data directory. Mosquitto reads the files; the
in-process amqtt broker checks the same files through ``ingest.amqtt_auth``. The ACL is a
static set of ``pattern`` lines (``%u`` is the user name), so adding a device never touches it; the
password file holds one PBKDF2-SHA512 entry per device (Mosquitto's ``$7$`` format). API keys are
stored hashed with SHA-256 in the database, which Mosquitto cannot check, so the entry is written when
the key is issued (``grant``, the raw key is known only then) and removed on revocation (``revoke`` or
``sync``). Mosquitto rereads both files on SIGHUP (``reload``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import Engine, and_, or_, select

from workbench.db.tables import api_keys, devices
from workbench.settings import Settings

ITERATIONS = 101  # what mosquitto_passwd uses for $7$ hashes
SERVICE_USER = "workbench"
log = logging.getLogger(__name__)
PREFIX_LENGTH = 12  # api_keys stores raw[:12] as the key's prefix
SPARKPLUG_NAMESPACE = "spBv1.0"

ACL = """# Maintained by the INSA IIoT Workbench: devices reach only their own topics.
user {service}
topic readwrite #

pattern write insa/devices/%u/telemetry
pattern write insa/devices/%u/telemetry/+
pattern write insa/devices/%u/status
pattern read insa/devices/%u/config
pattern read insa/devices/%u/command
pattern write spBv1.0/+/+/%u
pattern write spBv1.0/+/+/%u/+
pattern read spBv1.0/+/NCMD/%u
pattern read spBv1.0/+/DCMD/%u/+
pattern read spBv1.0/STATE/+
"""
# The patterns above as (access, topic filter with {u} for the user name), for brokers without ACL files.
PATTERNS = [
    (words[1], words[2].replace("%u", "{u}"))
    for words in (line.split() for line in ACL.splitlines())
    if words and words[0] == "pattern"
]
SERVICE_PASSWORD_FILE = "mqtt_service_password"


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """The ``$7$`` (PBKDF2-SHA512) password-file hash Mosquitto 2 checks."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_hash(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` password-file entry (what Mosquitto checks)."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        computed = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(iterations), 64
        )
        return hmac.compare_digest(computed, base64.b64decode(digest))
    except (ValueError, binascii.Error):
        return False


def read_passwords(folder: Path) -> dict[str, str]:
    """User name -> hash of the password file in ``folder`` (empty when there is none)."""
    entries: dict[str, str] = {}
    try:
        text = (folder / "passwd").read_text()
    except FileNotFoundError:
        return entries
    for line in text.splitlines():
        user, _, hashed = line.partition(":")
        if user and hashed:
            entries[user] = hashed
    return entries


def topic_allowed(user: str, topic: str, write: bool) -> bool:
    """Whether ``user`` may publish to (``write``) or receive from ``topic``, as the ACL file says."""
    if user == SERVICE_USER:
        return True
    if not user or any(char in user for char in "+#/"):
        return False  # Mosquitto never substitutes such names into a pattern either
    access = "write" if write else "read"
    return any(kind == access and _covers(pattern.format(u=user), topic) for kind, pattern in PATTERNS)


def subscription_allowed(user: str, topic_filter: str) -> bool:
    """Whether every topic ``topic_filter`` can match is one ``user`` may read."""
    if user == SERVICE_USER:
        return True
    if not user or any(char in user for char in "+#/"):
        return False
    return any(kind == "read" and _covers(pattern.format(u=user), topic_filter) for kind, pattern in PATTERNS)


def _covers(pattern: str, topic_filter: str) -> bool:
    # The patterns use only "+": a filter (or topic) is covered when each level equals or sits under one.
    levels, allowed = topic_filter.split("/"), pattern.split("/")
    return len(levels) == len(allowed) and all(a in ("+", f) for f, a in zip(levels, allowed, strict=True))


def service_password(data_dir: Path) -> str:
    """The platform's own broker password, generated once and kept (0600) in ``data_dir``."""
    path = data_dir / SERVICE_PASSWORD_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password)
    return password


def login_name(device_id: Any, protocol: str | None, connection_string: str | None) -> str:
    """The broker user name of a device: its id, or its node id for a Sparkplug edge node row."""
    parts = str(connection_string or "").split("/")
    node = protocol == "sparkplug" and len(parts) == 3 and parts[0] == SPARKPLUG_NAMESPACE
    return parts[2] if node and parts[2] not in ("", SERVICE_USER) else str(device_id)


def device_login(engine: Engine, device_id: uuid.UUID) -> str:
    """The broker user name of the device ``device_id`` (see ``login_name``)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(devices.c.protocol, devices.c.connection_string).where(devices.c.id == device_id)
        ).first()
    return login_name(device_id, row.protocol, row.connection_string) if row else str(device_id)


def auth_config(folder: Path) -> str:
    """Lines to add to a Mosquitto listener config: no anonymous clients, our password and ACL files."""
    return "\n".join(
        [
            "allow_anonymous false",
            f"password_file {folder / 'passwd'}",
            f"acl_file {folder / 'acl'}",
            "",
        ]
    )


class MosquittoAuth:
    """The password and ACL files in ``folder``; every change rewrites the file atomically."""

    def __init__(self, folder: Path, service_password: str) -> None:
        self.folder = folder
        self.service_password = service_password
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # Mosquitto drops to its own user and must read the files
        if not (folder / "passwd").exists():
            self._write("passwd", "")
        self._write("acl", ACL.format(service=SERVICE_USER))
        self._set(SERVICE_USER, mosquitto_hash(service_password))

    @property
    def service_url_credentials(self) -> str:
        """``user:password@`` for the platform's own MQTT URL."""
        return f"{SERVICE_USER}:{self.service_password}@"

    def grant(self, device_id: str, raw_key: str) -> None:
        """Let ``device_id`` log in with ``raw_key`` (replaces an earlier key of the device)."""
        self._set(device_id, mosquitto_hash(raw_key))

    def revoke(self, device_id: str) -> None:
        """Remove the device's login."""
        with self._lock:
            entries = self._entries()
            entries.pop(device_id, None)
            self._save(entries)

    def users(self) -> set[str]:
        """User names in the password file."""
        return set(self._entries())

    def sync(self, engine: Engine) -> list[str]:
        """Remove devices with no valid (unrevoked, unexpired) API key left; returns the removed ids."""
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        with engine.connect() as conn:
            valid = {
                login_name(row.device_id, row.protocol, row.connection_string)
                for row in conn.execute(
                    select(api_keys.c.device_id, devices.c.protocol, devices.c.connection_string)
                    .join(devices, devices.c.id == api_keys.c.device_id)
                    .where(
                        and_(
                            api_keys.c.device_id.is_not(None),
                            api_keys.c.revoked_at.is_(None),
                            or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
                        )
                    )
                )
            }
        with self._lock:
            entries = self._entries()
            removed = [user for user in entries if user != SERVICE_USER and user not in valid]
            for user in removed:
                del entries[user]
            self._save(entries)
        return removed

    @staticmethod
    def reload(pid: int) -> None:
        """Ask the Mosquitto process ``pid`` to reread the files."""
        os.kill(pid, signal.SIGHUP)

    def _set(self, user: str, hashed: str) -> None:
        if ":" in user or "\n" in user:
            raise ValueError("a Mosquitto user name cannot contain ':' or a newline")
        with self._lock:
            entries = self._entries()
            entries[user] = hashed
            self._save(entries)

    def _entries(self) -> dict[str, str]:
        entries: dict[str, str] = {}
        for line in (self.folder / "passwd").read_text().splitlines():
            user, _, hashed = line.partition(":")
            if user and hashed:
                entries[user] = hashed
        return entries

    def _save(self, entries: dict[str, str]) -> None:
        self._write("passwd", "".join(f"{user}:{hashed}\n" for user, hashed in entries.items()))

    def _write(self, name: str, text: str) -> None:
        temporary = self.folder / f".{name}.tmp"
        temporary.write_text(text)
        temporary.chmod(0o644)
        temporary.replace(self.folder / name)  # atomic: Mosquitto never reads a half-written file


def connect_key_events(
    auth: MosquittoAuth, engine: Engine, pid_file: Path | None = None
) -> Callable[[], None]:
    """Keep ``auth`` in step with device API keys issued/revoked anywhere; returns the disconnect function.

    After each change Mosquitto (its pid read from ``pid_file``) is told to reread the files.
    """
    from workbench.auth import key_events

    def reload() -> None:
        if pid_file is None:
            return
        try:
            auth.reload(int(pid_file.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            log.warning("cannot signal Mosquitto (pid file %s); logins change at its next restart", pid_file)

    granted: dict[uuid.UUID, str] = {}  # device -> prefix of the key its login holds

    def issued(device_id: uuid.UUID, raw_key: str) -> None:
        auth.grant(device_login(engine, device_id), raw_key)  # a device's login is its newest key
        granted[device_id] = raw_key[:PREFIX_LENGTH]
        reload()

    def revoked(device_id: uuid.UUID, prefix: str) -> None:
        # Rotation grants the new key before revoking the old one: keep that login. When unsure (the key
        # was issued before this process started), shut the login: a revoked key must never work.
        if granted.get(device_id, prefix) == prefix:
            granted.pop(device_id, None)
            auth.revoke(device_login(engine, device_id))
            reload()

    stops = [key_events.on_key_issued(issued), key_events.on_key_revoked(revoked)]
    auth.sync(engine)  # keys revoked while nobody listened

    def disconnect() -> None:
        for stop in stops:
            stop()

    return disconnect


def connect_logins(settings: Settings, engine: Engine) -> Callable[[], None] | None:
    """Keep the broker's login files (when this installation has them) in step with API keys.

    The files are ``INGEST_MOSQUITTO_AUTH_DIR``, else those of the local broker in the data directory;
    the service login is the one in ``MQTT_URL`` (else the generated one), so this process never changes
    the password the platform's own clients use. Returns the disconnect function, or None without files.
    """
    folder = settings.ingest_mosquitto_auth_dir
    pid_file = settings.ingest_mosquitto_pid_file
    if folder is None and not settings.mqtt_url and not settings.mqtt_allow_anonymous:
        folder = settings.data_dir / "broker-auth"  # `workbench up`'s broker, seen from another process
        pid_file = pid_file or settings.data_dir / "mosquitto" / "mosquitto.pid"
        if not (folder / "passwd").exists():
            return None
    if folder is None:
        return None
    given = urlsplit(settings.mqtt_url or "").password
    password = unquote(given) if given else service_password(settings.data_dir)
    return connect_key_events(MosquittoAuth(folder, password), engine, pid_file)
