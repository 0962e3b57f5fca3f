"""Serve the Flask app with gunicorn (one threaded worker; scale out with more processes behind nginx)."""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from workbench.platform import EXTENSION
from workbench.settings import Settings
from workbench.web import worker

log = logging.getLogger(__name__)

# Builds the app inside the worker process and returns it with the function that stops what it started.
AppFactory = Callable[[], tuple[Flask, Callable[[], None]]]
ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'


class WorkbenchServer(BaseApplication):
    """gunicorn driven from code: the app is built in the worker, after the fork, never before."""

    def __init__(self, factory: AppFactory, options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = options
        self.stop: Callable[[], None] | None = None
        super().__init__()

    def load_config(self) -> None:
        """Apply our options to gunicorn's configuration."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build the app (in the worker) and arrange for live clients to be told to reconnect on stop."""
        app, stop = self.factory()
        self.stop = stop
        worker.GuardedThreadWorker.on_stop = [lambda: disconnect_live_clients(app)]
        return app

    def worker_exit(self, arbiter: Any, gunicorn_worker: Any) -> None:
        """Stop the worker's background services once it has stopped serving."""
        if self.stop is not None:
            stop, self.stop = self.stop, None
            stop()


def disconnect_live_clients(app: Flask) -> None:
    """Close every Socket.IO connection at the transport level, so clients reconnect (to another instance)."""
    from workbench.live.socket import live_server

    live = live_server(app.extensions[EXTENSION])
    if live is None or live.socketio.server is None:
        return
    # Dropping the transport (no Engine.IO CLOSE, no Socket.IO DISCONNECT: after either, clients take
    # the server's word and stay away) is what makes browsers and python-socketio clients reconnect.
    eio = live.socketio.server.eio
    for sock in list(eio.sockets.values()):
        sock.close(wait=False, abort=True, reason=eio.reason.SERVER_DISCONNECT)
    log.info("live clients told to reconnect")


def options(settings: Settings) -> dict[str, Any]:
    """gunicorn's options from the workbench settings."""
    return {
        "bind": [f"{settings.host}:{settings.port}"],
        "workers": 1,  # Socket.IO long-polling needs every request of a client in one process
        "worker_class": "workbench.web.worker.GuardedThreadWorker",
        "threads": settings.web_threads,
        "worker_connections": settings.web_max_connections,
        "limit_request_line": 8190,  # gunicorn's 4094 refuses a latest-values query of 100 devices
        "backlog": 2048,
        "timeout": settings.web_timeout,
        "graceful_timeout": settings.web_graceful_timeout,
        "keepalive": settings.web_keepalive,
        "accesslog": "-" if settings.web_access_log else None,
        "access_log_format": ACCESS_FORMAT,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "workbench-web",
        # Forwarded headers are trusted by ProxyFix alone (WORKBENCH_TRUSTED_PROXIES), not by gunicorn too.
        "forwarded_allow_ips": "",
        "control_socket_disable": True,  # several web processes run on one machine
    }


def serve(factory: AppFactory, settings: Settings, stop: threading.Event | None = None) -> None:
    """Run gunicorn until SIGTERM (graceful) or SIGINT (quick); returns when the server has stopped.

    ``stop`` (:func:`workbench.runtime.stop_on_signals`) caught the signals until gunicorn's arbiter installs
    its own: one that came in between is handed to the arbiter as soon as it is ready."""
    raise_file_limit(settings.web_max_connections + 1024)
    worker.configure(settings.web_header_timeout, settings.web_idle_timeout)
    server = WorkbenchServer(factory, options(settings))
    server.cfg.set("worker_exit", server.worker_exit)
    if stop is not None:
        server.cfg.set("when_ready", lambda arbiter: _stop_if_set(stop))
    try:
        server.run()
    except SystemExit as done:
        if done.code not in (None, 0):
            raise


def _stop_if_set(stop: threading.Event) -> None:
    if stop.is_set():
        os.kill(os.getpid(), signal.SIGTERM)  # the arbiter's own handler now: a graceful stop


def raise_file_limit(wanted: int) -> None:
    """Raise the open-files soft limit towards ``wanted`` (each connection is a file)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
