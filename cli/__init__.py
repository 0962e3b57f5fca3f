"""The ``workbench`` command line: one module per group of commands, all on the :func:`cli` group.

``app.py`` composes the platform; these modules parse options and call it. The console script and
``python -m app`` reach this group as ``app.cli``.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """INSA IIoT Workbench: telemetry ingest, rules, notebooks and live dashboards."""


def _add_commands() -> None:
    # Imported here, not at the top: each module imports `app`, which names this group lazily.
    from cli import certs, data, lab, processes, users

    for module in (processes, data, lab, certs, users):
        for command in module.COMMANDS:
            cli.add_command(command)


_add_commands()
