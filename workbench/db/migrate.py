"""Alembic, driven from code: ``upgrade`` runs at start and from ``workbench db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str, compress_after: str = "7 days", retention: str | None = None) -> Config:
    """An Alembic config pointing at our migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    config.attributes["compress_after"] = compress_after
    config.attributes["retention"] = retention
    return config


def upgrade(url: str, compress_after: str = "7 days", retention: str | None = None) -> None:
    """Bring the database at ``url`` to the newest schema."""
    command.upgrade(alembic_config(url, compress_after, retention), "head")
