"""The e-mail of a finished report: a short summary with the report file attached."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from workbench.mail import build_message
from workbench.settings import Settings


def report_message(
    settings: Settings, report: dict[str, Any], recipients: list[str], name: str
) -> EmailMessage:
    """The e-mail for one archived report: a short summary and the file attached."""
    path = Path(report["path"])
    body = (
        f"The scheduled report {name!r} ({report['notebook']}, {report['format']}) is attached.\n\n"
        f"Report id: {report['id']}\n"
        f"Parameters: {json.dumps(report['parameters'], sort_keys=True)}\n"
        f"Notebook hash: {report['notebook_hash']}\nData hash: {report['data_hash']}\n"
    )
    attachment = (f"{report['notebook']}{path.suffix}", path.read_bytes())
    return build_message(settings, recipients, f"[Workbench report] {name}", body, [attachment])
