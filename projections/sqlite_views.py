"""The SQLite store of the read models: the library's SQLite factory, relaxed on fsync.

The views can always be rebuilt from the event log, so their file runs with
``PRAGMA synchronous=NORMAL``: in WAL mode that never corrupts the file; a power cut may only
lose the last few view transactions, together with their tracking records, and catching up
then redoes them. The event log itself keeps SQLite's full fsync on every commit.

A writing transaction starts with ``BEGIN IMMEDIATE``: it reads the tracking record before it
writes, and with several server processes catching up on one file a deferred transaction could
not upgrade its read to a write once another process had committed (SQLite then fails at once
rather than waiting); taking the write lock first makes the second process wait its turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
    SQLiteTransaction,
)
from eventsourcing.utils import Environment

__all__ = ["VIEWS_FACTORY_TOPIC", "ViewsSQLiteFactory"]

VIEWS_FACTORY_TOPIC = "projections.sqlite_views:ViewsSQLiteFactory"


class _ImmediateTransaction(SQLiteTransaction):
    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        return cursor


class _ViewsConnection(SQLiteConnection):
    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[SQLiteCursor]:
        if not commit:
            with super().transaction(commit=False) as cursor:
                yield cursor
            return
        with _ImmediateTransaction(self, commit=True) as cursor, cursor:
            yield cursor


class _RelaxedPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        made = super()._create_connection()
        # The library keeps the sqlite3 connection private; this is its documented pragma.
        made._sqlite_conn.execute("PRAGMA synchronous=NORMAL")
        return _ViewsConnection(made._sqlite_conn, max_age=self.max_age)


class ViewsSQLiteFactory(SQLiteFactory):
    def __init__(self, env: Environment | dict[str, str] | None) -> None:
        super().__init__(env)
        strict = self.datastore.pool
        self.datastore.pool = _RelaxedPool(db_name=strict.db_name, lock_timeout=strict.lock_timeout)
        strict.close()
