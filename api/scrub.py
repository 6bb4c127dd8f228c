"""After an erasure: leave no readable copy of the shredded rows in the stores' files.

Deleting a row leaves its bytes in the database files until the space is reused: in a SQLite
page's free space and its write-ahead log, in a PostgreSQL heap page as a dead tuple, and in
old index entries of both. So after ``personal_data_erased`` is recorded (and the views have
folded the partner again with placeholders), each store is compacted:

* SQLite (the event log's file and the views' file beside it): ``PRAGMA secure_delete = ON``,
  ``VACUUM`` (every table and index written anew, the file truncated) and
  ``PRAGMA wal_checkpoint(TRUNCATE)`` (the write-ahead log, which still holds earlier images
  of the pages, emptied to zero bytes). https://sqlite.org/pragma.html#pragma_secure_delete

* PostgreSQL: ``VACUUM (FULL)`` of the personal-data tables, of the views' tables that held
  names and descriptions, of the partners' snapshots (the erasure deleted the partner's), and
  of the log's table when format 1 events were overwritten: each table and its indexes are
  written to new files and the old ones removed.
  https://www.postgresql.org/docs/current/sql-vacuum.html

Limits, stated in the README: PostgreSQL's write-ahead log segments (and any WAL archive or
replica) keep the inserted rows until they are recycled, and a removed file's blocks are left
to the file system; the personal values there are encrypted under a key that is gone, but
format 1 events' plain values and the views' names are not. Backups are not rewritten: the
keys they hold are the way to shred them, which is why each subject has one.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any
from uuid import UUID

from domain.application import Partnerships
from domain.personal import CONTENT_ERASED
from projections.log import log_table
from projections.store import LedgerView

__all__ = ["scrub_stores"]

_log = logging.getLogger("pledger.erasure")
CHECKPOINT_ATTEMPTS = 50
CHECKPOINT_RETRY_SECONDS = 0.1
CONCURRENT_WAIT_SECONDS = 10.0
# The views' tables whose rows hold what an erasure replaces by placeholders.
_VIEW_TABLES = ("partners", "commitments", "coalitions")


def scrub_stores(ledger: Partnerships, view: LedgerView, subject_id: UUID) -> None:
    """Compact the log's and the views' stores after ``subject_id``'s erasure (see the
    module's notes). On PostgreSQL the log's table is rewritten only when format 1 events of
    the subject were overwritten.

    Raises the driver's error when a store refuses (for instance a SQLite file locked past its
    busy timeout); the erasure itself is already committed by then.
    """
    table = log_table(ledger.recorder)
    if table.postgres:
        rewritten = any(
            f'"{CONTENT_ERASED}":true'.encode() in stored.state
            for stored in ledger.recorder.select_events(subject_id)
        )
        tables = _postgres_tables(ledger, view)
        _vacuum_postgres(table.connect_args, tables if rewritten else tables[:2] + tables[3:])
        return
    _vacuum_sqlite(table.connect_args)
    views: Any = view
    _vacuum_sqlite({"database": views.datastore.pool.db_name, "uri": True})


def _postgres_tables(ledger: Partnerships, view: LedgerView) -> list[str]:
    recorder: Any = ledger.recorder
    views: Any = view
    schema = recorder.datastore.schema
    return [
        recorder.vault.keys,
        recorder.vault.rows,
        f'"{schema}".{recorder.events_table_name}',
        *(f'"{views.datastore.schema}".{views.prefix}{name}' for name in _VIEW_TABLES),
        recorder._snapshots_table(),
    ]


def _vacuum_postgres(connect_args: Any, tables: list[str]) -> None:
    """``VACUUM (FULL)`` copies a deleted row that a transaction still running might see (a
    "recently dead" row): a transaction id is cluster-wide, so one still running in any
    database of the server keeps it. First wait, up to ``CONCURRENT_WAIT_SECONDS``, until
    every transaction that began before the erasure has ended (those the connection may see:
    pg_stat_activity shows other roles' transactions to a superuser or pg_read_all_stats);
    past that, log which are still running and compact anyway."""
    import psycopg

    with psycopg.connect(**connect_args, autocommit=True) as connection:
        (started,) = connection.execute("SELECT statement_timestamp()").fetchone() or (None,)
        deadline = time.monotonic() + CONCURRENT_WAIT_SECONDS
        running: list[Any] = []
        while time.monotonic() < deadline:
            running = connection.execute(
                "SELECT pid, datname FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL) AND xact_start < %s",
                (started,),
            ).fetchall()
            if not running:
                break
            time.sleep(CHECKPOINT_RETRY_SECONDS)
        if running:
            _log.warning(
                "erasure: transactions begun before it are still running (%s); the rows "
                "they might see are kept by VACUUM (FULL) until the next compaction",
                ", ".join(f"pid {pid} in {db}" for pid, db in running),
            )
        for name in tables:
            connection.execute(f"VACUUM (FULL) {name}")


def _vacuum_sqlite(connect_args: Any) -> None:
    connection = sqlite3.connect(**connect_args, timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA secure_delete = ON")
        connection.execute("VACUUM")
        for _ in range(CHECKPOINT_ATTEMPTS):
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(CHECKPOINT_RETRY_SECONDS)
        msg = "the write-ahead log stayed in use by a reader; run the erasure's scrub again"
        raise sqlite3.OperationalError(msg)
    finally:
        connection.close()
