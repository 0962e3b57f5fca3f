"""Outgoing e-mail: build a message (with attachments) and send it through the ``WORKBENCH_SMTP_*`` server."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from pathlib import PurePath

from workbench.settings import Settings

TLS_MODES = ("starttls", "ssl", "none")
_MEDIA_TYPES = {
    ".pdf": ("application", "pdf"),
    ".zip": ("application", "zip"),
    ".xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ".html": ("text", "html"),
}


class MailNotConfigured(RuntimeError):
    """``WORKBENCH_SMTP_HOST`` is unset, so nothing can be e-mailed."""


def build_message(
    settings: Settings,
    to: Iterable[str],
    subject: str,
    body: str,
    attachments: Iterable[tuple[str, bytes]] = (),
) -> EmailMessage:
    """A plain-text message from ``WORKBENCH_SMTP_FROM`` with ``(filename, data)`` attachments."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    for filename, data in attachments:
        maintype, subtype = _MEDIA_TYPES.get(PurePath(filename).suffix, ("application", "octet-stream"))
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


def send(settings: Settings, message: EmailMessage, timeout: float = 30) -> None:
    """Send via the SMTP settings: STARTTLS, implicit TLS (``ssl``) or plain (``none``); login if a user."""
    if not settings.smtp_host:
        raise MailNotConfigured("e-mail is not configured: set WORKBENCH_SMTP_HOST")
    mode = settings.smtp_tls.lower()
    if mode not in TLS_MODES:
        # Refuse rather than fall back to plain text when the setting is mistyped.
        raise ValueError(f"WORKBENCH_SMTP_TLS={settings.smtp_tls!r}: use starttls, ssl or none")
    context = ssl.create_default_context()  # verified against the system's trust store
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
