"""Builds the ledger's objects from settings; the CLI and the server both start here."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from api.auth import TokenBook
from api.service import LedgerService
from api.settings import Settings
from api.writer import GroupWriter
from domain.application import Partnerships
from domain.hashing import format_instant
from projections.audit import AuditReport, ViewsSeen, verify_log
from projections.locking import WriteLock
from projections.queries import LedgerQueries
from projections.runner import ViewKeeper, open_view
from projections.store import LedgerView

__all__ = ["Services", "cli_settings", "cli_user", "open_ledger", "open_services"]

LAST_VERIFICATION = "last_verification"


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
    service: LedgerService

    def verify(self, advance: Callable[[int], None] = lambda _: None) -> AuditReport:
        """Verify the whole log (projections.audit) and keep the result, with when it ran,
        for the home and audit pages."""
        report = verify_log(self.ledger, seen=self.views_seen(), advance=advance)
        stored = {**report.as_dict(), "verified_at": format_instant(datetime.now(UTC))}
        self.ledger.recorder.set_state(LAST_VERIFICATION, orjson.dumps(stored).decode())  # type: ignore[attr-defined]
        return report

    def views_seen(self) -> ViewsSeen:
        """What the views have taken in, for verify to compare the log with (issue 15)."""
        head_position, head_digest, head_events = self.view.chain_head()
        digests = {p: (d, n) for p, d, n in self.view.checkpoints()}
        if head_position:
            digests[head_position] = (head_digest, head_events)
        return ViewsSeen(self.view.processed_position(), digests, self.view.heads_by_position())

    def last_verification(self) -> dict[str, Any] | None:
        """The kept result of the last verification (``verified_at`` added), or ``None``."""
        stored = self.ledger.recorder.state(LAST_VERIFICATION, "")  # type: ignore[attr-defined]
        return orjson.loads(stored) if stored else None

    def close(self) -> None:
        self.writer.stop()
        self.keeper.stop()
        self.ledger.close()
        self.view.datastore.close()
        self.keeper.lock.close()


def open_services(settings: Settings) -> Services:
    ledger = open_ledger(settings)
    view = open_view(settings.views_env())
    view.zone = settings.zone
    # SQLite: one lock file orders the writing transactions of every server process.
    lock = WriteLock(
        settings.db_path.with_name(settings.db_path.name + ".lock")
        if settings.store == "sqlite"
        else None
    )
    keeper = ViewKeeper(ledger, view, settings.views_env(), lock)
    keeper.follow_zone()  # PLEDGER_TIMEZONE changed since the views were kept: fold them again
    writer = GroupWriter(ledger, keeper)
    return Services(
        settings,
        ledger,
        view,
        keeper,
        LedgerQueries(view, keeper.log),
        TokenBook(ledger.recorder),
        writer,
        LedgerService(ledger, keeper, writer),
    )


def cli_settings(db: str | None) -> Settings:
    """The settings a command runs with (``--db`` beside the environment); a bad value such as
    an unknown PLEDGER_TIMEZONE stops the command with its message and exit status 2."""
    try:
        return Settings.from_env(db=db)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def cli_user() -> str:
    """``recorded_by`` for events written from the command line (SPEC §2)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"
