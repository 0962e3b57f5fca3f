"""Device authentication on Mosquitto: a password file and an ACL file the platform maintains.

Each device logs in with its id as user name and an API key as password, and may publish only under
``insa/devices/{its id}/`` (telemetry, status) and read only its config and commands. The ACL is a
static set of ``pattern`` lines (``%u`` is the user name), so adding a device never touches it; the
password file holds one PBKDF2-SHA512 entry per device (Mosquitto's ``$7$`` format). API keys are
stored hashed with SHA-256 in the database, which Mosquitto cannot check, so the entry is written when
the key is issued (``grant``, the raw key is known only then) and removed on revocation (``revoke`` or
``sync``). Mosquitto rereads both files on SIGHUP (``reload``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, and_, or_, select

from workbench.db.tables import api_keys

ITERATIONS = 101  # what mosquitto_passwd uses for $7$ hashes
SERVICE_USER = "workbench"
log = logging.getLogger(__name__)
PREFIX_LENGTH = 12  # api_keys stores raw[:12] as the key's prefix

ACL = """# Maintained by the INSA IIoT Workbench: devices reach only their own topics.
user {service}
topic readwrite #

pattern write insa/devices/%u/telemetry
pattern write insa/devices/%u/telemetry/+
pattern write insa/devices/%u/status
pattern read insa/devices/%u/config
pattern read insa/devices/%u/command
"""


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """The ``$7$`` (PBKDF2-SHA512) password-file hash Mosquitto 2 checks."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


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
                str(row[0])
                for row in conn.execute(
                    select(api_keys.c.device_id).where(
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
        auth.grant(str(device_id), raw_key)  # a device's login is its newest key
        granted[device_id] = raw_key[:PREFIX_LENGTH]
        reload()

    def revoked(device_id: uuid.UUID, prefix: str) -> None:
        # Rotation grants the new key before revoking the old one: keep that login. When unsure (the key
        # was issued before this process started), shut the login: a revoked key must never work.
        if granted.get(device_id, prefix) == prefix:
            granted.pop(device_id, None)
            auth.revoke(str(device_id))
            reload()

    stops = [key_events.on_key_issued(issued), key_events.on_key_revoked(revoked)]
    auth.sync(engine)  # keys revoked while nobody listened

    def disconnect() -> None:
        for stop in stops:
            stop()

    return disconnect
