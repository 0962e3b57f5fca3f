"""Commands on the platform's data: ``db upgrade``, ``db grant-reader``, ``grafana export``, ``import``."""

from __future__ import annotations

from pathlib import Path

import click

from app import StartupError, running_services
from cli.common import fail, guarded, settings_from_env
from workbench.db.engine import make_engine


@click.group()
def db() -> None:
    """Database commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate every table to the newest schema."""
    settings = settings_from_env()

    def run() -> None:
        with running_services(settings, with_broker=False):
            click.echo("workbench: database is at the newest schema")

    guarded(run)


@db.command("grant-reader")
@click.option("--role", default="workbench_reader", show_default=True, help="The login to create or update.")
@click.option("--password", help="Its password (a random one is made and printed when omitted).")
def db_grant_reader(role: str, password: str | None) -> None:
    """A read-only login (Grafana, BI tools): telemetry, rollups, latest values, devices, alerts."""
    from workbench.db.engine import libpq_url
    from workbench.db.reader import grant_reader

    settings = settings_from_env()

    def run() -> None:
        with running_services(settings, with_broker=False) as resolved:
            assert resolved.database_url
            made = grant_reader(libpq_url(resolved.database_url), role, password)
            click.echo(f"workbench: {role} may read telemetry, rollups, latest values, devices and alerts")
            if not password:
                click.echo(f"workbench: its password (shown once): {made}")

    guarded(run)


@click.group()
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

    settings = settings_from_env()

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

    guarded(run)


@click.group("import")
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
        fail("give --database URL and/or --json FILE --device NAME")
    settings = settings_from_env()

    def run() -> None:
        with running_services(settings, with_broker=False) as resolved:
            assert resolved.database_url
            try:
                summary = import_thingsboard(resolved.database_url, database, files, device)
            except (ValueError, psycopg.Error) as error:
                raise StartupError(f"import failed: {str(error).strip().splitlines()[0]}") from None
            for line in summary.lines():
                click.echo(f"workbench: {line}")

    guarded(run)


COMMANDS = (db, grafana, import_group)
