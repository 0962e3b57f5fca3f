"""E-mail a finished report to its recipients through the configured SMTP server."""

from __future__ import annotations

import json
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from workbench.settings import Settings


class MailNotConfigured(RuntimeError):
    """``WORKBENCH_SMTP_HOST`` is unset, so reports cannot be e-mailed."""


def report_message(
    settings: Settings, report: dict[str, Any], recipients: list[str], name: str
) -> EmailMessage:
    """The e-mail for one archived report: a short summary and the file attached."""
    path = Path(report["path"])
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"[Workbench report] {name}"
    message.set_content(
        f"The scheduled report {name!r} ({report['notebook']}, {report['format']}) is attached.\n\n"
        f"Report id: {report['id']}\n"
        f"Parameters: {json.dumps(report['parameters'], sort_keys=True)}\n"
        f"Notebook hash: {report['notebook_hash']}\nData hash: {report['data_hash']}\n"
    )
    maintype, subtype = _media_type(path.suffix)
    message.add_attachment(
        path.read_bytes(), maintype=maintype, subtype=subtype, filename=f"{report['notebook']}{path.suffix}"
    )
    return message


def send(settings: Settings, message: EmailMessage, timeout: float = 30) -> None:
    """Send with the SMTP settings: STARTTLS, implicit TLS (``ssl``) or plain (``none``)."""
    if not settings.smtp_host:
        raise MailNotConfigured("e-mail is not configured: set WORKBENCH_SMTP_HOST")
    mode = settings.smtp_tls.lower()
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if mode == "ssl":
        smtp = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with smtp:
        if mode == "starttls":
            smtp.starttls(context=context)
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(message)


def _media_type(suffix: str) -> tuple[str, str]:
    known = {
        ".pdf": ("application", "pdf"),
        ".zip": ("application", "zip"),
        ".xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ".html": ("text", "html"),
    }
    return known.get(suffix, ("application", "octet-stream"))
