"""Every setting of the workbench, declared once, read from ``WORKBENCH_*`` variables at start."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
import tempfile
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ENV_PREFIX = "WORKBENCH_"


class SettingsError(ValueError):
    """A setting has a value the workbench cannot use; the message is one line for the operator."""


def setting(default: Any, help: str) -> Any:
    """Declare one setting: its default and the help line shown in the README and ``--help``."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """The workbench's settings; build with :meth:`from_env`, never at import."""

    database_url: str | None = setting(
        None, "PostgreSQL URL (`postgresql://user:pass@host:5432/db`); unset starts an embedded server"
    )
    database_read_url: str | None = setting(
        None,
        "PostgreSQL URL of a streaming replica for read-only queries (series, aggregates, exports, charts, "
        "backtests, reports, notebook reads); unset: everything on DATABASE_URL",
    )
    database_timeout: float = setting(
        3.0, "Seconds to wait for a database connection or a free pool slot; beyond it the API answers 503"
    )
    data_dir: Path = setting(
        Path("./var"), "Where the embedded database, secrets, notebooks and reports live"
    )
    mqtt_url: str | None = setting(
        None, "MQTT broker URL (`mqtt://` or `mqtts://`, user:password allowed); unset starts a local broker"
    )
    mqtt_port: int = setting(1883, "Port of the broker `workbench up` starts when `MQTT_URL` is unset")
    mqtt_ca_file: Path | None = setting(
        None, "CA bundle that verifies the broker of an `mqtts://` MQTT_URL; unset: the system's trust store"
    )
    mqtt_cert_file: Path | None = setting(
        None, "Client certificate (PEM) of the platform's own MQTT client, where the broker requires one"
    )
    mqtt_key_file: Path | None = setting(None, "Private key (PEM) of `MQTT_CERT_FILE`")
    certs_dir: Path | None = setting(
        None,
        "Where `workbench certs` keeps the device CA, issued certificates and the CRL; unset: DATA_DIR/pki",
    )
    mqtt_allow_anonymous: bool = setting(
        False,
        "Local broker: accept clients without a login (anyone on the host then reads and writes every topic)",
    )
    redis_url: str | None = setting(
        None, "Redis URL: shares Socket.IO events and rate limits between web processes"
    )
    secret_key: str | None = setting(
        None, "Signs tokens and sessions; unset generates one, kept in `DATA_DIR/secret_key`"
    )
    session_idle_timeout_s: int = setting(
        8 * 3600, "UI sessions end after this many seconds without a request (idle timeout)"
    )
    session_absolute_timeout_s: int = setting(
        7 * 24 * 3600, "UI sessions end this many seconds after sign-in, however active (absolute timeout)"
    )
    local_login: bool = setting(
        True, "Sign-in with e-mail and password (UI and API); false leaves single sign-on only"
    )
    oidc_providers: str | None = setting(
        None,
        "Single sign-on: a JSON list of OpenID providers (`name`, `issuer`, `client_id`, `client_secret`, "
        "`scopes`, `role_claim`, `roles`, `default_role`); see Security model",
    )
    trusted_proxies: int = setting(
        0, "Reverse proxies in front of the app whose `X-Forwarded-For/-Proto/-Host` are believed; 0: none"
    )
    host: str = setting("127.0.0.1", "Address the web app listens on")
    port: int = setting(5001, "Port the web app listens on")
    log_level: str = setting("INFO", "Logging level: DEBUG, INFO, WARNING, ERROR")
    web_threads: int = setting(
        1000, "Web: threads of the production server (each open Socket.IO WebSocket holds one)"
    )
    web_max_connections: int = setting(
        10000, "Web: open connections the server holds at once (slow and idle ones included)"
    )
    web_timeout: int = setting(
        60, "Web: seconds the server's event loop may stall before its worker is restarted"
    )
    web_graceful_timeout: int = setting(20, "Web: seconds in-flight requests get to finish after SIGTERM")
    web_keepalive: int = setting(5, "Web: seconds an idle keep-alive connection stays open")
    web_header_timeout: float = setting(
        10.0, "Web: seconds a client has to send its request line and headers before it is closed"
    )
    web_idle_timeout: float = setting(
        60.0, "Web: seconds a request body or WebSocket may stay silent before its connection is closed"
    )
    web_access_log: bool = setting(True, "Web: log one line per request (gunicorn access log) to stdout")
    hsts_max_age: int = setting(
        31536000, "Strict-Transport-Security max-age (seconds) on responses served over HTTPS; 0: no HSTS"
    )
    max_body_bytes: int = setting(
        16777216, "Largest request body (bytes) on routes without a limit of their own; beyond it 413"
    )
    cors_origins: str | None = setting(
        None, "Comma-separated browser origins allowed to call `/api/v1` (CORS), or `*`; unset allows none"
    )
    timescale_compress_after: str = setting(
        "7 days", "TimescaleDB only: compress telemetry chunks older than this interval"
    )
    telemetry_retention: str | None = setting(
        None, "Drop raw telemetry older than this interval (`365 days`, say; rollups stay); unset keeps all"
    )
    smtp_host: str | None = setting(
        None, "SMTP server for e-mail actions and report delivery; unset disables e-mail"
    )
    smtp_port: int = setting(587, "SMTP server port (587 STARTTLS, 465 implicit TLS, 25 plain)")
    smtp_user: str | None = setting(None, "SMTP login user; unset sends without authentication")
    smtp_password: str | None = setting(None, "SMTP login password")
    smtp_from: str = setting("workbench@localhost", "Sender address of e-mails the workbench sends")
    smtp_tls: str = setting("starttls", "SMTP transport security: starttls, ssl (implicit TLS) or none")
    webhook_allowed_networks: str | None = setting(
        None,
        "Comma-separated networks (`10.0.0.0/8,127.0.0.1`) webhook actions may reach although private, "
        "loopback or link-local; unset: public addresses only",
    )
    rules_action_threads: int = setting(
        4, "Rule engine: worker threads running actions (e-mail, webhooks, scripts)"
    )
    ingest_batch_size: int = setting(5000, "Ingest: most points written in one COPY transaction")
    ingest_writers: int = setting(
        2, "Ingest: writer connections committing batches side by side (acks still go in arrival order)"
    )
    ingest_flush_ms: int = setting(250, "Ingest: longest a point waits in the writer before it commits")
    ingest_queue_points: int = setting(
        200000, "Ingest: points queued for the writer before producers block (backpressure)"
    )
    ingest_max_body_bytes: int = setting(
        4194304,
        "Ingest: largest `POST /api/v1/telemetry` body (bytes; about 40,000 full points); beyond it 413",
    )
    ingest_import_max_bytes: int = setting(
        1073741824, "Ingest: largest bulk import body (bytes; streamed, never held in memory); beyond it 413"
    )
    ingest_key_points: int = setting(
        1000,
        "Ingest: points a device key may send over HTTP per unit of its hourly `rate_limit`; beyond: 429",
    )
    ingest_offline_after: float = setting(
        300.0, "Ingest: seconds of silence after which an online device is marked offline"
    )
    ingest_max_age_days: int = setting(3650, "Ingest: reject points whose timestamp is older (days)")
    ingest_max_future_s: int = setting(300, "Ingest: reject points this many seconds or more ahead")
    ingest_max_abs_value: float = setting(
        1e100, "Ingest: quarantine values whose magnitude is larger (any finite double up to 1.79e308)"
    )
    ingest_auto_register: bool = setting(
        False, "Ingest: register unknown device ids (UUIDs) on first data instead of quarantining it"
    )
    ingest_client_id: str = setting(
        "workbench-ingest", "Ingest: MQTT client id of the persistent session (survives restarts)"
    )
    ingest_shared_group: str | None = setting(
        None, "Ingest: MQTT 5 shared-subscription group (`$share/GROUP/...`): processes split the load"
    )
    ingest_inflight: int = setting(
        10000, "Ingest: MQTT receive maximum (QoS 1 messages delivered but not yet committed and acked)"
    )
    ingest_mqtt: bool = setting(True, "Ingest: subscribe to device telemetry over MQTT")
    ingest_mosquitto_auth_dir: Path | None = setting(
        None,
        "Broker password/ACL files kept in step with device API keys; unset: `DATA_DIR/broker-auth` for the "
        "local broker, off for an external one",
    )
    ingest_mosquitto_pid_file: Path | None = setting(
        None, "Ingest: Mosquitto's `pid_file`; the broker is sent SIGHUP to reread logins after a key change"
    )
    connectors_enabled: bool = setting(True, "Ingest: poll OPC-UA and Modbus devices from the devices table")
    connectors_reload_s: float = setting(
        2.0, "Ingest: seconds between checks for added, changed or removed OPC-UA/Modbus devices"
    )
    sparkplug_enabled: bool = setting(True, "Ingest: act as Sparkplug B primary host on `spBv1.0/#`")
    sparkplug_host_id: str = setting("workbench", "Sparkplug B host id (the `spBv1.0/STATE/{id}` topic)")
    sparkplug_auto_register: bool = setting(
        True, "Sparkplug B: create device rows for nodes and devices on their first BIRTH"
    )
    dask_scheduler: str | None = setting(
        None, "Dask scheduler (`tcp://host:8786`) for notebook runs and analytics; unset uses a local cluster"
    )
    notebook_kernels: int = setting(2, "Warm Jupyter kernels kept for notebook rule evaluations")
    notebook_timeout: float = setting(120.0, "Seconds a notebook run may take before its kernel is killed")
    scripts_dir: Path | None = setting(
        None, "Folder whose `.py`/`.ipynb` files script actions may run; unset: `scripts/` of the repository"
    )
    report_execution: str = setting(
        "warm", "How report notebooks run: `warm` (kernels kept for reports), `cold` (fresh kernel) or `dask`"
    )
    plugins: str | None = setting(
        None, "Plugin modules to import at start (comma-separated), beside `workbench.plugins` entry points"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every declared setting from ``WORKBENCH_*`` variables, then apply ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            raw = environ.get(env_name(spec.name))
            if raw is not None and raw != "":
                values[spec.name] = _parse(spec.name, raw, _hint(spec.name))
        values.update(overrides)
        instance = cls(**values)
        instance.validate()
        if instance.mqtt_url and (instance.mqtt_ca_file or instance.mqtt_cert_file):
            # make_client is the one door of every MQTT client (also in spawned ingest workers): the files
            # travel with the URL.
            instance = dataclasses.replace(instance, mqtt_url=instance.mqtt_tls_url())
        return instance

    def mqtt_tls_url(self) -> str | None:
        """``MQTT_URL`` with the TLS files (``MQTT_CA_FILE``, ``_CERT_FILE``, ``_KEY_FILE``) in its query."""
        if not self.mqtt_url:
            return None
        parts = urlsplit(self.mqtt_url)
        query = dict(parse_qsl(parts.query))
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, f"mqtt_{name}")
            if value is not None:
                query[name] = str(value)
        return urlunsplit(parts._replace(query=urlencode(query)))

    def pki_dir(self) -> Path:
        """The folder of the device CA (``CERTS_DIR``, else ``DATA_DIR/pki``)."""
        return self.certs_dir or self.data_dir / "pki"

    def validate(self) -> None:
        """Reject values the platform cannot start with, naming the setting."""
        if self.database_url is not None:
            _check_url("DATABASE_URL", self.database_url, ("postgresql", "postgresql+psycopg", "postgres"))
        if self.database_read_url is not None:
            schemes = ("postgresql", "postgresql+psycopg", "postgres")
            _check_url("DATABASE_READ_URL", self.database_read_url, schemes)
        if self.mqtt_url is not None:
            _check_url("MQTT_URL", self.mqtt_url, ("mqtt", "mqtts", "tcp", "ssl"))
        if (self.mqtt_cert_file is None) != (self.mqtt_key_file is None):
            raise SettingsError("WORKBENCH_MQTT_CERT_FILE and WORKBENCH_MQTT_KEY_FILE go together")
        if self.redis_url is not None:
            _check_url("REDIS_URL", self.redis_url, ("redis", "rediss"))
        for name in ("port", "mqtt_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise SettingsError(f"{env_name(name)}={value}: a port is between 0 and 65535")
        for network in (self.webhook_allowed_networks or "").split(","):
            try:
                ipaddress.ip_network(network.strip(), strict=False) if network.strip() else None
            except ValueError as error:
                raise SettingsError(f"{env_name('webhook_allowed_networks')}: {error}") from None
        for name in ("session_idle_timeout_s", "session_absolute_timeout_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{env_name(name)}={getattr(self, name)}: must be positive (seconds)")
        if self.trusted_proxies < 0:
            raise SettingsError(f"{env_name('trusted_proxies')}={self.trusted_proxies}: must be 0 or more")
        if not 0 < self.ingest_max_abs_value <= 1.7976931348623157e308:
            raise SettingsError(
                f"{env_name('ingest_max_abs_value')}={self.ingest_max_abs_value}: "
                "a positive finite number up to 1.79e308"
            )
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(f"{env_name('log_level')}={self.log_level}: not a logging level")

    def resolved_secret_key(self) -> str:
        """The configured secret key, or the one generated once and kept in the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Web processes sharing a data directory may start together: the key appears whole (a link to
        # a finished file), and whoever loses the race reads the winner's.
        fd, name = tempfile.mkstemp(prefix=".secret_key.", dir=self.data_dir)  # mode 0600
        draft = Path(name)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
        return path.read_text().strip()


def env_name(name: str) -> str:
    """The environment variable that sets the named setting."""
    return ENV_PREFIX + name.upper()


def declared() -> list[tuple[str, str, str]]:
    """Every setting as (environment variable, default shown as text, help)."""
    rows = []
    for spec in dataclasses.fields(Settings):
        default = "" if spec.default is None else str(spec.default)
        rows.append((env_name(spec.name), default, spec.metadata["help"]))
    return rows


def _hint(name: str) -> Any:
    return typing.get_type_hints(Settings)[name]


def _parse(name: str, raw: str, hint: Any) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    try:
        if hint is bool:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true or false")
        return hint(raw)
    except ValueError as error:
        raise SettingsError(f"{env_name(name)}={raw!r}: expected {hint.__name__} ({error})") from None


def _check_url(name: str, url: str, schemes: tuple[str, ...]) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as error:
        raise SettingsError(f"{ENV_PREFIX}{name}: malformed URL ({error})") from None
    if parts.scheme not in schemes:
        raise SettingsError(f"{ENV_PREFIX}{name}: scheme must be one of {', '.join(schemes)}, got {url!r}")
    if parts.scheme not in ("redis", "rediss") and not parts.hostname and "host=" not in parts.query:
        raise SettingsError(f"{ENV_PREFIX}{name}: URL has no host: {url!r}")
