"""The commands that run until stopped: ``up``, ``web``, ``ingest``, ``simulate``, ``demo``."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import click

from app import (
    StartupError,
    ensure_port_free,
    platform_factory,
    running_services,
    serve,
    start_background,
    start_web_background,
)
from cli.common import DEV_HELP, guarded, long_running, settings_from_env
from workbench.db.engine import make_engine
from workbench.platform import Platform
from workbench.settings import Settings


@click.command()
@click.option("--host", help="Address to listen on (WORKBENCH_HOST).")
@click.option("--port", type=int, help="Port to listen on (WORKBENCH_PORT).")
@click.option("--dev", is_flag=True, help=DEV_HELP)
def up(host: str | None, port: int | None, dev: bool) -> None:
    """Start the whole platform: database, broker, web app, ingest, rules."""
    settings = settings_from_env(host=host, port=port)
    stop = long_running(settings)

    def run() -> None:
        ensure_port_free(settings.host, settings.port, "WORKBENCH_PORT")
        with running_services(settings) as resolved:
            click.echo(f"workbench: serving on http://{resolved.host}:{resolved.port}", err=True)
            hint_first_admin(resolved)
            serve(platform_factory(resolved, start_background), resolved, dev, stop)

    guarded(run)


@click.command("web")
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
    settings = settings_from_env(host=host, port=port)
    stop = long_running(settings)

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

            serve(platform_factory(resolved, background), resolved, dev, stop)

    guarded(run)


@click.command("ingest")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes sharing the load.")
def ingest_command(workers: int) -> None:
    """Run the ingest service alone: MQTT in, validation, batch writer, device status (events via Redis)."""
    settings = settings_from_env()
    stop = long_running(settings)

    def run() -> None:
        from ingest.service import run_standalone

        with running_services(settings) as resolved:
            if not stop.is_set():
                click.echo(f"workbench: ingest running ({workers} worker(s))", err=True)
                run_standalone(resolved, workers, stop)

    guarded(run)


@click.command("simulate")
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

    settings = settings_from_env()
    stop = long_running(settings)

    def run() -> None:
        try:
            plant = load_plant(Path(plant_file) if plant_file else None, seed, list(faults))
        except (ValueError, KeyError, TypeError) as error:
            raise StartupError(f"plant: {error}") from None
        with running_services(settings, with_broker=False) as resolved:
            click.echo(f"workbench: simulating {plant.name} ({len(plant.devices())} devices)", err=True)
            simulate(resolved, plant, speed, interval, duration, http_url, stop)

    guarded(run)


@click.command("demo")
@click.option("--port", type=int, help="Port of the web app (default: WORKBENCH_PORT, or a free one).")
@click.option("--dev", is_flag=True, help=DEV_HELP)
def demo_command(port: int | None, dev: bool) -> None:
    """One command: the whole platform plus a simulated plant, sample dashboards, rules and a report."""
    from ingest.simulator.demo import demo_settings, start_demo

    settings = demo_settings(settings_from_env(port=port))
    stop = long_running(settings)

    def run() -> None:
        with running_services(settings) as resolved:
            url = f"http://{resolved.host}:{resolved.port}"

            def background(platform: Platform, stack: contextlib.ExitStack) -> None:
                start_background(platform, stack)
                stop_demo, info = start_demo(platform, url)
                stack.callback(stop_demo)
                click.echo(f"workbench: demo serving on {url}", err=True)
                click.echo(f"workbench: log in as {info.email} with password {info.password}", err=True)

            serve(platform_factory(resolved, background), resolved, dev, stop)

    guarded(run)


def hint_first_admin(settings: Settings) -> None:
    """Say how to create the first administrator when there is none yet."""
    from workbench.auth.users import FIRST_ADMIN_COMMAND, has_admin

    assert settings.database_url
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        if not has_admin(engine):
            hint = f"workbench: no administrator yet; create one: .venv/bin/{FIRST_ADMIN_COMMAND}"
            click.echo(hint, err=True)
    finally:
        engine.dispose()


COMMANDS = (up, web_command, ingest_command, simulate_command, demo_command)
