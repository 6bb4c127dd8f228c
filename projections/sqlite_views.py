"""The SQLite store of the read models: the library's SQLite factory, relaxed on fsync.

The views can always be rebuilt from the event log, so their file runs with
``PRAGMA synchronous=NORMAL``: in WAL mode that never corrupts the file; a power cut may only
lose the last few view transactions, together with their tracking records, and catching up
then redoes them. The event log itself keeps SQLite's full fsync on every commit.
"""

from __future__ import annotations

from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory
from eventsourcing.utils import Environment

__all__ = ["VIEWS_FACTORY_TOPIC", "ViewsSQLiteFactory"]

VIEWS_FACTORY_TOPIC = "projections.sqlite_views:ViewsSQLiteFactory"


class _RelaxedPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        # The library keeps the sqlite3 connection private; this is its documented pragma.
        connection._sqlite_conn.execute("PRAGMA synchronous=NORMAL")
        return connection


class ViewsSQLiteFactory(SQLiteFactory):
    def __init__(self, env: Environment | dict[str, str] | None) -> None:
        super().__init__(env)
        strict = self.datastore.pool
        self.datastore.pool = _RelaxedPool(db_name=strict.db_name, lock_timeout=strict.lock_timeout)
        strict.close()
