"""``workbench user create``: the first administrator (and any other user) from the command line."""

from __future__ import annotations

import click

from app import StartupError, running_services
from cli.common import guarded, settings_from_env
from workbench.auth.users import ROLES, UserError, create_user
from workbench.db.engine import make_engine


@click.group()
def user() -> None:
    """User commands."""


@user.command("create")
@click.option("--email", required=True, help="The user's e-mail, used to log in.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="The user's role.")
@click.option("--password", help="Password (asked for when omitted).")
def user_create(email: str, role: str, password: str | None) -> None:
    """Create a user (the first admin comes from here)."""
    settings = settings_from_env()
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

    guarded(run)


COMMANDS = (user,)
