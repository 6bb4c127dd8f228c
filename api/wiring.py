"""Builds the ledger's objects from settings; the CLI and the server both start here."""

from __future__ import annotations

import getpass

from domain.application import Partnerships
from api.settings import Settings

__all__ = ["cli_user", "open_ledger"]


def open_ledger(settings: Settings) -> Partnerships:
    """The write side on the configured store (creating the SQLite file and tables if new)."""
    if settings.store == "sqlite":
        settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    return Partnerships(env=settings.event_store_env())


def cli_user() -> str:
    """``recorded_by`` for events written from the command line (SPEC §2)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"
