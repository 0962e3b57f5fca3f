"""``workbench certs``: the device CA, issuing and revoking client certificates (MQTT over TLS)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli.common import fail, settings_from_env


@click.group()
def certs() -> None:
    """Device certificates (MQTT over TLS with client certificates): the CA, issue, revoke."""


def _authority() -> Any:
    from workbench.certs import CertAuthority

    return CertAuthority(settings_from_env().pki_dir())


def _certs_guarded(action: Callable[[], None]) -> None:
    from workbench.certs import CertError

    try:
        action()
    except CertError as error:
        fail(str(error))


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


COMMANDS = (certs,)
