"""Composition root: ``create_app`` wires the platform and the ingest service; the ``workbench`` CLI."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
from flask import Flask
from sqlalchemy.exc import DBAPIError, OperationalError

from ingest.broker import LocalBroker
from workbench import plugins
from workbench.auth.users import ROLES, UserError, create_user
from workbench.db.embedded import EmbeddedPostgres
from workbench.db.engine import make_engine
from workbench.db.migrate import upgrade
from workbench.live.bus import EventBus
from workbench.platform import EXTENSION, Platform
from workbench.runtime import configure_logging
from workbench.settings import Settings, SettingsError

# The web stack (Dash, pandas, papermill, ...) is imported inside create_app and the commands that
# serve, so `workbench --help` and `workbench user create` start in a fraction of a second.

log = logging.getLogger("workbench")


class StartupError(RuntimeError):
    """The platform cannot start; the message is the one line the operator sees."""


def create_app(settings: Settings | None = None, bus: EventBus | None = None) -> Flask:
    """Build the Flask app (API, ops endpoints) for a platform whose database is already reachable."""
    from workbench.api import errors as api_errors
    from workbench.api import ops
    from workbench.api.openapi import create_api
    from workbench.api.protection import init_protection, throttle_failed_logins
    from workbench.live.socket import LiveServer
    from workbench.notebooks.service import init_notebooks
    from workbench.ui import init_ui
    from workbench.web.https import init_https

    settings = settings or Settings.from_env()
    if not settings.database_url:
        raise StartupError("create_app needs a database URL; `workbench up` starts the embedded one")
    app = Flask("workbench")
    app.config["SECRET_KEY"] = settings.resolved_secret_key()
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes  # routes may lower it (protection.py)
    reader = None
    if settings.database_read_url:
        reader = make_engine(settings.database_read_url, timeout=settings.database_timeout)
    platform = Platform(
        settings=settings,
        engine=make_engine(settings.database_url, timeout=settings.database_timeout),
        bus=bus or EventBus(),
        reader=reader,
    )
    app.extensions[EXTENSION] = platform
    plugins.load((settings.plugins or "").split(","))
    ops.register_database_check(platform)
    api_errors.init_errors(app)
    init_protection(app, settings)
    init_https(app, settings)  # around ProxyFix (set by init_protection): it reads the scheme ProxyFix set
    app.register_blueprint(ops.blueprint)
    api = create_api(app)
    for blueprint in api_blueprints():
        api.register_blueprint(blueprint)
    LiveServer(platform).init_app(app)
    init_ui(app)
    throttle_failed_logins(app, ["auth.login", "ui_login.login_submit"])
    init_notebooks(platform)
    _connect_mosquitto_logins(platform)
    from ingest.connectors.probe import read_once

    platform.services.probe = read_once  # "Test connection" reads in this process, ingest running or not
    from workbench.secrets import seal_stored

    seal_stored(platform.engine, app.config["SECRET_KEY"])  # secrets stored before sealing existed
    return app


def _connect_mosquitto_logins(platform: Platform) -> None:
    """Device API keys issued or revoked through this app become (or stop being) broker logins."""
    from ingest.device_auth import connect_logins

    disconnect = connect_logins(platform.settings, platform.engine)
    if disconnect is not None:
        platform.services.mosquitto_logins = disconnect


def api_blueprints() -> list[Any]:
    """Every flask-smorest blueprint of ``/api/v1``, in registration order."""
    from ingest import http as ingest_http
    from workbench.api import auth, dashboards, devices, keys, service_tokens, telemetry, users
    from workbench.notebooks import blueprint as notebooks_api
    from workbench.reports import api as reports_api
    from workbench.rules import alerts_api
    from workbench.rules import api as rules_api

    own = [auth.blp, users.blp, devices.blp, telemetry.blp, dashboards.blp, keys.blp, ingest_http.blp]
    own.append(service_tokens.blp)
    return [*own, rules_api.blp, alerts_api.blp, reports_api.blp, notebooks_api.blp]


@contextlib.contextmanager
def running_services(settings: Settings, with_broker: bool = True) -> Iterator[Settings]:
    """Start what the settings leave to us (database, broker), migrate, yield the resolved settings."""
    stack = contextlib.ExitStack()
    with stack:
        if not settings.database_url:
            server = EmbeddedPostgres(settings.data_dir / "postgres")
            try:
                url = server.start()
            except Exception as error:
                raise StartupError(f"embedded PostgreSQL failed to start: {error}") from None
            stack.callback(server.stop)
            settings = replace(settings, database_url=url)
        migrate(settings)
        if with_broker and not settings.mqtt_url:
            broker = LocalBroker(
                broker_port(settings),
                settings.data_dir,
                allow_anonymous=settings.mqtt_allow_anonymous,
                auth_folder=settings.ingest_mosquitto_auth_dir,
            )
            url = broker.start()
            stack.callback(broker.stop)
            # The platform's clients log in with the broker's service login; key changes update its files.
            auth_dir = broker.auth.folder if broker.auth else None
            settings = replace(
                settings,
                mqtt_url=url,
                ingest_mosquitto_auth_dir=auth_dir,
                ingest_mosquitto_pid_file=broker.pid_file,
            )
        yield settings


def migrate(settings: Settings) -> None:
    """Run migrations, turning an unreachable database into a one-line startup error."""
    assert settings.database_url
    try:
        upgrade(settings.database_url, settings.timescale_compress_after, settings.telemetry_retention)
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise StartupError(f"database unreachable: {reason}") from None


def broker_port(settings: Settings) -> int:
    """The local broker's port: the configured one, or a free one when the default 1883 is taken."""
    try:
        ensure_port_free("127.0.0.1", settings.mqtt_port, "WORKBENCH_MQTT_PORT")
    except StartupError:
        if settings.mqtt_port != Settings.mqtt_port or "WORKBENCH_MQTT_PORT" in os.environ:
            raise  # a port the operator chose is not silently replaced
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        click.echo(f"workbench: port 1883 is taken; the local MQTT broker listens on {port}", err=True)
        return port
    return settings.mqtt_port


def ensure_port_free(host: str, port: int, setting: str) -> None:
    """Fail with a clear line when ``host:port`` is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise StartupError(f"port {host}:{port} is in use; choose another with {setting}") from None


def _fail(message: str) -> NoReturn:
    click.echo(f"workbench: {message}", err=True)
    sys.exit(1)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as error:
        _fail(str(error))


def start_background(platform: Platform, stack: contextlib.ExitStack) -> None:
    """Start the MQTT publisher, ingest, the rule engine and the report scheduler; ``stack`` stops them."""
    from ingest.service import start_in_process
    from workbench.db.retention import RetentionJob
    from workbench.notebooks.service import close_notebooks
    from workbench.reports.scheduler import start_reports
    from workbench.rules.engine import RuleEngine

    _start_publisher(platform, stack)
    stack.callback(RetentionJob(platform.engine, platform.settings.telemetry_retention).start().stop)
    stack.callback(close_notebooks, platform)
    stack.callback(start_in_process(platform))
    stack.callback(RuleEngine(platform).start().stop)
    stack.callback(start_reports(platform))
    freeze_startup_heap()


def _start_publisher(platform: Platform, stack: contextlib.ExitStack) -> None:
    from workbench.mqtt import MqttPublisher

    if platform.settings.mqtt_url and platform.mqtt is None:
        # Device config (retained), commands and alert notifications go out through one client.
        publisher = MqttPublisher(platform.settings.mqtt_url)
        try:
            publisher.start()
        except ConnectionError as error:
            raise StartupError(str(error)) from None
        platform.mqtt = publisher
        platform.health.register("mqtt", publisher.health)
        stack.callback(publisher.stop)


def freeze_startup_heap() -> None:
    """Move everything allocated at start (modules, app, caches) out of the garbage collector's sight."""
    # ~240k long-lived objects made each full collection cost 130-350 ms: a pause in ingest,
    # rule evaluation and live pushes alike. Frozen objects are never scanned again.
    gc.collect()
    gc.freeze()


def _hint_first_admin(settings: Settings) -> None:
    from workbench.auth.users import FIRST_ADMIN_COMMAND, has_admin

    assert settings.database_url
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        if not has_admin(engine):
            hint = f"workbench: no administrator yet; create one: .venv/bin/{FIRST_ADMIN_COMMAND}"
            click.echo(hint, err=True)
    finally:
        engine.dispose()


def serve(factory: Callable[[], tuple[Flask, Callable[[], None]]], settings: Settings, dev: bool) -> None:
    """Serve API, Dash and Socket.IO until interrupted: gunicorn, or Werkzeug's server with ``dev``."""
    if not dev:
        from workbench.web.server import serve as serve_production

        # The app is built in gunicorn's worker (after its fork), with the threads it starts.
        serve_production(factory, settings)
        return
    from workbench.live.socket import live_server

    app, stop = factory()
    try:
        live = live_server(app.extensions[EXTENSION])
        assert live is not None, "create_app attaches the live server"
        # Werkzeug's threaded server carries the WebSocket upgrade (simple-websocket) for Socket.IO.
        live.socketio.run(
            app, host=settings.host, port=settings.port, use_reloader=False, allow_unsafe_werkzeug=True
        )
    finally:
        stop()


def platform_factory(
    settings: Settings, background: Callable[[Platform, contextlib.ExitStack], None]
) -> Callable[[], tuple[Flask, Callable[[], None]]]:
    """A factory of the app with ``background`` services started; returns (app, stop)."""

    def build() -> tuple[Flask, Callable[[], None]]:
        stack = contextlib.ExitStack()
        try:
            app = create_app(settings)
            background(app.extensions[EXTENSION], stack)
        except BaseException:
            stack.close()
            raise

        def stop() -> None:
            from workbench import logs

            logs.stopping.set()  # clients of servers that stop first may complain now: expected
            stack.close()

        return app, stop

    return build


def start_web_background(platform: Platform, stack: contextlib.ExitStack, scheduler: bool) -> None:
    """One of several web processes: the publisher, HTTP ingest; rules and reports with ``scheduler``."""
    if not scheduler:
        from ingest.service import start_in_process
        from workbench.notebooks.service import close_notebooks

        _start_publisher(platform, stack)
        stack.callback(close_notebooks, platform)
        stack.callback(start_in_process(platform))
        freeze_startup_heap()
        return
    start_background(platform, stack)


def _configure_logging(settings: Settings) -> None:
    configure_logging(settings)


def _terminate_on_sigterm() -> None:
    from workbench import logs

    def handler(signum: int, frame: FrameType | None) -> None:
        logs.stopping.set()  # clients of servers that stop first may complain now: expected
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    # Also when started with SIGINT ignored (a background job of a script): Ctrl-C or kill -INT stops it.
    signal.signal(signal.SIGINT, handler)


def _guarded(action: Callable[[], None]) -> None:
    try:
        action()
    except (StartupError, SettingsError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        log.info("stopped")
    except Exception as error:  # anything unforeseen is still one line; the traceback is at DEBUG level
        log.debug("unexpected failure", exc_info=True)
        _fail(unexpected_failure(error))


def unexpected_failure(error: BaseException) -> str:
    """One line for an unforeseen error: what failed and how to see more."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    first = (str(cause).strip().splitlines() or [""])[0][:300]
    where = "database error" if isinstance(error, DBAPIError) else "unexpected error"
    return (
        f"{where}: {type(cause).__name__}: {first} "
        "(run again with WORKBENCH_LOG_LEVEL=DEBUG for the traceback, and report it)"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """INSA IIoT Workbench: telemetry ingest, rules, notebooks and live dashboards."""


DEV_HELP = "Serve with Werkzeug's development server instead of gunicorn."


@cli.command()
@click.option("--host", help="Address to listen on (WORKBENCH_HOST).")
@click.option("--port", type=int, help="Port to listen on (WORKBENCH_PORT).")
@click.option("--dev", is_flag=True, help=DEV_HELP)
def up(host: str | None, port: int | None, dev: bool) -> None:
    """Start the whole platform: database, broker, web app, ingest, rules."""
    settings = _settings(host=host, port=port)
    _configure_logging(settings)
    _terminate_on_sigterm()

    def run() -> None:
        ensure_port_free(settings.host, settings.port, "WORKBENCH_PORT")
        with running_services(settings) as resolved:
            click.echo(f"workbench: serving on http://{resolved.host}:{resolved.port}", err=True)
            _hint_first_admin(resolved)
            serve(platform_factory(resolved, start_background), resolved, dev)

    _guarded(run)


@cli.command("web")
@click.option("--host", help="Address to listen on (WORKBENCH_HOST).")
@click.option("--port", type=int, help="Port to listen on (WORKBENCH_PORT).")
@click.option(
    "--scheduler/--no-scheduler",
    default=False,
    show_default=True,
    help="Also run the rule engine, report schedules and retention (exactly one web process should).",
)
@click.option("--dev", is_flag=True, help=DEV_HELP)
def web_command(host: str | None, port: int | None, scheduler: bool, dev: bool) -> None:
    """Run one web process (API, UI, Socket.IO, HTTP ingest) for scale-out behind nginx; needs a database."""
    settings = _settings(host=host, port=port)
    _configure_logging(settings)
    _terminate_on_sigterm()

    def run() -> None:
        if not settings.database_url:
            raise StartupError("workbench web needs WORKBENCH_DATABASE_URL (shared by every web process)")
        ensure_port_free(settings.host, settings.port, "WORKBENCH_PORT")
        # MQTT telemetry belongs to `workbench ingest`; connectors to one process: here only HTTP ingest.
        own = replace(settings, ingest_mqtt=False, connectors_enabled=False, sparkplug_enabled=False)
        with running_services(own, with_broker=False) as resolved:
            click.echo(f"workbench: web serving on http://{resolved.host}:{resolved.port}", err=True)

            def background(platform: Platform, stack: contextlib.ExitStack) -> None:
                start_web_background(platform, stack, scheduler)

            serve(platform_factory(resolved, background), resolved, dev)

    _guarded(run)


@cli.command("ingest")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes sharing the load.")
def ingest_command(workers: int) -> None:
    """Run the ingest service alone: MQTT in, validation, batch writer, device status (events via Redis)."""
    settings = _settings()
    _configure_logging(settings)
    _terminate_on_sigterm()

    def run() -> None:
        from ingest.service import run_standalone

        with running_services(settings) as resolved:
            click.echo(f"workbench: ingest running ({workers} worker(s))", err=True)
            run_standalone(resolved, workers)

    _guarded(run)


@cli.command("simulate")
@click.option("--plant", "plant_file", type=click.Path(exists=True, dir_okay=False), help="Plant JSON file.")
@click.option("--seed", type=int, help="Random seed (the same seed gives the same data).")
@click.option("--speed", type=float, default=1.0, show_default=True, help="Simulated seconds per second.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between reports.")
@click.option("--duration", type=float, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--fault", "faults", multiple=True, help="device:kind[:key][@start_s][*severity], repeatable.")
@click.option("--http-url", help="Web app for HTTP devices (default: WORKBENCH_HOST:WORKBENCH_PORT).")
def simulate_command(
    plant_file: str | None,
    seed: int | None,
    speed: float,
    interval: float,
    duration: float | None,
    faults: tuple[str, ...],
    http_url: str | None,
) -> None:
    """Run the plant simulator: pumps, tanks and valves over MQTT, Sparkplug B, HTTP, Modbus and OPC-UA."""

    from ingest.simulator.commands import load_plant, simulate

    settings = _settings()
    _configure_logging(settings)
    _terminate_on_sigterm()

    def run() -> None:
        try:
            plant = load_plant(Path(plant_file) if plant_file else None, seed, list(faults))
        except (ValueError, KeyError, TypeError) as error:
            raise StartupError(f"plant: {error}") from None
        with running_services(settings, with_broker=False) as resolved:
            click.echo(f"workbench: simulating {plant.name} ({len(plant.devices())} devices)", err=True)
            simulate(resolved, plant, speed, interval, duration, http_url)

    _guarded(run)


@cli.command("demo")
@click.option("--port", type=int, help="Port of the web app (default: WORKBENCH_PORT, or a free one).")
@click.option("--dev", is_flag=True, help=DEV_HELP)
def demo_command(port: int | None, dev: bool) -> None:
    """One command: the whole platform plus a simulated plant, sample dashboards, rules and a report."""
    from ingest.simulator.demo import demo_settings, start_demo

    settings = demo_settings(_settings(port=port))
    _configure_logging(settings)
    _terminate_on_sigterm()

    def run() -> None:
        with running_services(settings) as resolved:
            url = f"http://{resolved.host}:{resolved.port}"

            def background(platform: Platform, stack: contextlib.ExitStack) -> None:
                start_background(platform, stack)
                stop, info = start_demo(platform, url)
                stack.callback(stop)
                click.echo(f"workbench: demo serving on {url}", err=True)
                click.echo(f"workbench: log in as {info.email} with password {info.password}", err=True)

            serve(platform_factory(resolved, background), resolved, dev)

    _guarded(run)


@cli.group()
def db() -> None:
    """Database commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate every table to the newest schema."""
    settings = _settings()

    def run() -> None:
        with running_services(settings, with_broker=False):
            click.echo("workbench: database is at the newest schema")

    _guarded(run)


@db.command("grant-reader")
@click.option("--role", default="workbench_reader", show_default=True, help="The login to create or update.")
@click.option("--password", help="Its password (a random one is made and printed when omitted).")
def db_grant_reader(role: str, password: str | None) -> None:
    """A read-only login (Grafana, BI tools): telemetry, rollups, latest values, devices, alerts."""
    from workbench.db.engine import libpq_url
    from workbench.db.reader import grant_reader

    settings = _settings()

    def run() -> None:
        with running_services(settings, with_broker=False) as resolved:
            assert resolved.database_url
            made = grant_reader(libpq_url(resolved.database_url), role, password)
            click.echo(f"workbench: {role} may read telemetry, rollups, latest values, devices and alerts")
            if not password:
                click.echo(f"workbench: its password (shown once): {made}")

    _guarded(run)


@cli.group()
def grafana() -> None:
    """Grafana integration."""


@grafana.command("export")
@click.argument("dashboard")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout)."
)
def grafana_export(dashboard: str, output: Path | None) -> None:
    """Write DASHBOARD (name or id) as Grafana dashboard JSON on the read-only datasource."""
    import json

    from workbench.grafana import DashboardNotFound, export

    settings = _settings()

    def run() -> None:
        with running_services(settings, with_broker=False) as resolved:
            assert resolved.database_url
            engine = make_engine(resolved.database_url, pool_size=1)
            try:
                model = export(engine, dashboard)
            except DashboardNotFound as error:
                raise StartupError(str(error)) from None
            finally:
                engine.dispose()
            text = json.dumps(model, indent=2) + "\n"
            if output:
                output.write_text(text)
                click.echo(f"workbench: wrote {output}", err=True)
            else:
                click.echo(text, nl=False)

    _guarded(run)


@cli.command("lab")
@click.option("--ip", help="Address JupyterLab listens on (default: localhost).")
@click.option("--port", type=int, help="Port JupyterLab listens on (default: its own choice).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
def lab_command(ip: str | None, port: int | None, no_browser: bool) -> None:
    """Open JupyterLab on this repository with kernels that reach the platform's database."""

    from workbench.notebooks.lab import LabUnavailable, run_lab

    settings = _settings()

    def run() -> None:
        with running_services(settings, with_broker=False) as resolved:
            try:
                code = run_lab(resolved, Path(__file__).resolve().parent, port, not no_browser, ip)
            except LabUnavailable as error:
                raise StartupError(str(error)) from None
            if code:
                raise StartupError(f"JupyterLab exited with status {code}")

    _guarded(run)


@cli.group("import")
def import_group() -> None:
    """Bring a plant's devices and history over from another platform."""


@import_group.command("thingsboard")
@click.option(
    "--database", help="ThingsBoard's PostgreSQL URL (devices, attributes, ts_kv, latest values, alarms)."
)
@click.option("--json", "files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--device", help="With --json: the device (name or id) the files belong to; created when missing."
)
def import_thingsboard_command(database: str | None, files: tuple[Path, ...], device: str | None) -> None:
    """Import from ThingsBoard: resumable, and a rerun adds nothing. --json takes REST timeseries files."""
    import psycopg

    from ingest.importers.run import import_thingsboard

    if not database and not files:
        _fail("give --database URL and/or --json FILE --device NAME")
    settings = _settings()

    def run() -> None:
        with running_services(settings, with_broker=False) as resolved:
            assert resolved.database_url
            try:
                summary = import_thingsboard(resolved.database_url, database, files, device)
            except (ValueError, psycopg.Error) as error:
                raise StartupError(f"import failed: {str(error).strip().splitlines()[0]}") from None
            for line in summary.lines():
                click.echo(f"workbench: {line}")

    _guarded(run)


@cli.group()
def certs() -> None:
    """Device certificates (MQTT over TLS with client certificates): the CA, issue, revoke."""


def _authority() -> Any:
    from workbench.certs import CertAuthority

    return CertAuthority(_settings().pki_dir())


def _certs_guarded(action: Callable[[], None]) -> None:
    from workbench.certs import CertError

    try:
        action()
    except CertError as error:
        _fail(str(error))


@certs.command("init-ca")
@click.option("--days", type=int, default=3650, show_default=True, help="Validity of the CA certificate.")
@click.option(
    "--force", is_flag=True, help="Replace an existing CA (every certificate it issued stops working)."
)
def certs_init_ca(days: int, force: bool) -> None:
    """Create the device CA in WORKBENCH_CERTS_DIR (default DATA_DIR/pki), with an empty CRL."""
    authority = _authority()
    _certs_guarded(lambda: click.echo(f"workbench: CA certificate {authority.init(days, force)}"))


@certs.command("issue")
@click.argument("name")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Folder for the files (default: CA folder/issued/NAME)."
)
@click.option("--days", type=int, default=825, show_default=True, help="Validity of the certificate.")
@click.option("--server", is_flag=True, help="A server certificate; NAME is host names/addresses: a,b,...")
def certs_issue(name: str, out: str | None, days: int, server: bool) -> None:
    """Issue a key + certificate for device NAME (its id: the certificate's CN), with the CA bundle."""
    from pathlib import Path

    authority = _authority()
    folder = Path(out) if out else authority.folder / "issued" / name.split(",")[0]

    def run() -> None:
        issued = authority.issue(name, folder, days, server)
        click.echo(f"workbench: key {issued.key}, certificate {issued.cert}, CA bundle {issued.ca}")

    _certs_guarded(run)


@certs.command("revoke")
@click.argument("name")
def certs_revoke(name: str) -> None:
    """Revoke device NAME's certificates and rewrite the CRL (reload Mosquitto to apply it)."""
    authority = _authority()

    def run() -> None:
        count = authority.revoke(name)
        click.echo(f"workbench: revoked {count} certificate(s) of {name}; CRL {authority.crl_path}")

    _certs_guarded(run)


@cli.group()
def user() -> None:
    """User commands."""


@user.command("create")
@click.option("--email", required=True, help="The user's e-mail, used to log in.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="The user's role.")
@click.option("--password", help="Password (asked for when omitted).")
def user_create(email: str, role: str, password: str | None) -> None:
    """Create a user (the first admin comes from here)."""
    settings = _settings()
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    assert password is not None
    secret = password

    def run() -> None:
        with running_services(settings, with_broker=False) as resolved:
            assert resolved.database_url
            engine = make_engine(resolved.database_url, pool_size=1)
            try:
                user_id = create_user(engine, email, role, secret)
            except UserError as error:
                raise StartupError(str(error)) from None
            finally:
                engine.dispose()
            click.echo(f"workbench: created {role} {email} ({user_id})")

    _guarded(run)


if __name__ == "__main__":
    cli()
