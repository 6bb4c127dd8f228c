"""Builds the ledger's objects from settings; the CLI and the server both start here."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from api.auth import TokenBook
from api.settings import Settings
from api.writer import GroupWriter
from domain.application import Partnerships
from projections.locking import WriteLock
from projections.queries import LedgerQueries
from projections.runner import ViewKeeper, open_view
from projections.store import LedgerView

__all__ = ["Services", "cli_user", "open_ledger", "open_services"]


def open_ledger(settings: Settings) -> Partnerships:
    """The write side on the configured store (creating the SQLite file and tables if new)."""
    if settings.store == "sqlite":
        settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    return Partnerships(env=settings.event_store_env())


@dataclass
class Services:
    """Everything a request or a command needs: the write side, the views, the queries."""

    settings: Settings
    ledger: Partnerships
    view: LedgerView
    keeper: ViewKeeper
    queries: LedgerQueries
    tokens: TokenBook
    writer: GroupWriter

    def close(self) -> None:
        self.writer.stop()
        self.keeper.stop()
        self.ledger.close()
        self.view.datastore.close()
        self.keeper.lock.close()


def open_services(settings: Settings) -> Services:
    ledger = open_ledger(settings)
    view = open_view(settings.views_env())
    # SQLite: one lock file orders the writing transactions of every server process.
    lock = WriteLock(
        settings.db_path.with_name(settings.db_path.name + ".lock")
        if settings.store == "sqlite"
        else None
    )
    keeper = ViewKeeper(ledger, view, settings.views_env(), lock)
    return Services(
        settings,
        ledger,
        view,
        keeper,
        LedgerQueries(view, keeper.log),
        TokenBook(ledger.recorder),
        GroupWriter(ledger, keeper),
    )


def cli_user() -> str:
    """``recorded_by`` for events written from the command line (SPEC §2)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"
