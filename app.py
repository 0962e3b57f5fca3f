"""Composition root: ``create_app`` wires the platform and the ingest service; the services a command starts.

The ``workbench`` command line (:mod:`cli`) parses options and calls these functions.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import click
from flask import Flask
from sqlalchemy.exc import OperationalError

from ingest.broker import LocalBroker
from workbench import plugins
from workbench.db.embedded import EmbeddedPostgres
from workbench.db.engine import make_engine
from workbench.db.migrate import upgrade
from workbench.live.bus import EventBus
from workbench.platform import EXTENSION, Platform
from workbench.runtime import run_until_signal
from workbench.settings import Settings

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
    from workbench.api.protection import init_protection, throttle_failed_logins, trust_proxies
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
    app.register_blueprint(ops.blueprint)
    api = create_api(app)
    for blueprint in api_blueprints():
        api.register_blueprint(blueprint)
    LiveServer(platform).init_app(app)
    # Outermost, around Socket.IO's middleware (which init_app wrapped around the app), so engine.io
    # requests get the forwarded scheme and address, HSTS and Secure cookies too. HTTPS reads the scheme
    # ProxyFix set, so it goes around ProxyFix.
    trust_proxies(app, settings.trusted_proxies)
    init_https(app, settings)
    init_ui(app)
    throttle_failed_logins(app, ["auth.login", "ui_login.login_submit"])
    init_notebooks(platform)
    _connect_mosquitto_logins(platform)
    from ingest.connectors.probe import read_once
    from ingest.http import connect_quarantine
    from workbench.secrets import seal_stored

    connect_quarantine(platform)
    platform.services.probe = read_once  # "Test connection" reads in this process, ingest running or not

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


def serve(
    factory: Callable[[], tuple[Flask, Callable[[], None]]],
    settings: Settings,
    dev: bool,
    stop: threading.Event,
) -> None:
    """Serve API, Dash and Socket.IO until ``stop`` is set (SIGTERM, SIGINT): gunicorn, or Werkzeug (dev)."""
    if stop.is_set():  # stopped while the database and broker were starting: serve nothing
        return
    if not dev:
        from workbench.web.server import serve as serve_production

        # The app is built in gunicorn's worker (after its fork), with the threads it starts; gunicorn's
        # arbiter takes SIGTERM (graceful) and SIGINT (quick) over from ``stop`` while it runs.
        serve_production(factory, settings, stop)
        return
    from werkzeug.serving import make_server

    app, stop_app = factory()
    try:
        # Werkzeug's threaded server carries the WebSocket upgrade (simple-websocket) for Socket.IO; it
        # serves in a thread so that the main thread waits for the stop signal, not an exception.
        server = make_server(settings.host, settings.port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="werkzeug", daemon=True)
        thread.start()
        try:
            run_until_signal(stop)
        finally:
            server.shutdown()
            thread.join(10)
    finally:
        stop_app()


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


def __getattr__(name: str) -> Any:
    """``app.cli``: the ``workbench`` command group (:mod:`cli`; the console script's target)."""
    if name == "cli":
        from cli import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    # `python -m app` runs this file as __main__; the commands import `app`: let them find this module
    # rather than execute the file a second time (two StartupError classes, two of everything).
    sys.modules.setdefault("app", sys.modules[__name__])
    from cli import cli

    cli()
