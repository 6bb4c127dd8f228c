"""The event log's recorders, extended with what the API keeps beside the log.

Two small tables live in the event log's own database, outside the log:

    api_requests   one row per Idempotency-Key, inserted in the same transaction as the
                   events the request recorded, so a retried request can never record twice
    api_tokens     credentials: only a SHA-256 of each token, its name, role and coalition
    api_state      named values every process shares: the web sessions' signing secret,
                   the last verification's result

They extend eventsourcing's SQLite and PostgreSQL application recorders through the
library's APPLICATION_RECORDER_TOPIC setting; the log's own tables are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg.sql import SQL

__all__ = [
    "POSTGRES_TOPIC",
    "SQLITE_TOPIC",
    "LedgerPostgresRecorder",
    "LedgerSQLiteRecorder",
    "RequestMark",
    "StoredRequest",
    "StoredToken",
]

SQLITE_TOPIC = "api.recorders:LedgerSQLiteRecorder"
POSTGRES_TOPIC = "api.recorders:LedgerPostgresRecorder"

_TABLES = [
    """CREATE TABLE IF NOT EXISTS {p}api_requests (
        key_hash TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        route TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        version INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {p}api_tokens (
        token_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        coalition_id TEXT,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {p}api_state (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
]


@dataclass(frozen=True)
class RequestMark:
    """Saved with a write's events: which request recorded them (see ``api_requests``).

    ``stream_id`` and ``version`` name the request's event; left out, they mean the last event
    of the save (a save of one request's event).
    """

    key_hash: str
    fingerprint: str
    route: str
    stream_id: str | None = None
    version: int | None = None


@dataclass(frozen=True)
class StoredRequest:
    fingerprint: str
    route: str
    stream_id: str
    version: int


@dataclass(frozen=True)
class StoredToken:
    name: str
    role: str
    coalition_id: str | None
    token_hash: str = ""


class _ApiTables:
    """Dialect-neutral statements; subclasses say how placeholders and prefixes look."""

    datastore: Any
    prefix = ""

    def _q(self, statement: str) -> str:
        return statement.replace("{p}", self.prefix)

    def _mark(
        self, c: Any, stored_events: Sequence[StoredEvent], marks: Sequence[RequestMark] | None
    ) -> None:
        if not marks or not stored_events:
            return
        last = stored_events[-1]
        c.executemany(
            self._q(
                "INSERT INTO {p}api_requests (key_hash, fingerprint, route, stream_id, version) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            [
                (
                    mark.key_hash,
                    mark.fingerprint,
                    mark.route,
                    mark.stream_id or str(last.originator_id),
                    mark.version or last.originator_version,
                )
                for mark in marks
            ],
        )

    def _one(self, statement: str, params: Sequence[Any]) -> Any:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._q(statement), tuple(params))
            return c.fetchone()

    def find_request(self, key_hash: str) -> StoredRequest | None:
        row = self._one(
            "SELECT fingerprint, route, stream_id, version FROM {p}api_requests WHERE key_hash = ?",
            (key_hash,),
        )
        if row is None:
            return None
        return StoredRequest(row["fingerprint"], row["route"], row["stream_id"], row["version"])

    def insert_token(self, token_hash: str, token: StoredToken, created_at: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "INSERT INTO {p}api_tokens (token_hash, name, role, coalition_id, created_at) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                (token_hash, token.name, token.role, token.coalition_id, created_at),
            )

    def find_token(self, token_hash: str) -> StoredToken | None:
        row = self._one(
            "SELECT name, role, coalition_id, token_hash FROM {p}api_tokens WHERE token_hash = ?",
            (token_hash,),
        )
        if row is None:
            return None
        return StoredToken(row["name"], row["role"], row["coalition_id"], row["token_hash"])

    def state(self, name: str, default: str) -> str:
        """The value kept under ``name``; ``default`` is stored first when there is none, so
        every process of a ledger reads the same value (the session secret, for one)."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "INSERT INTO {p}api_state (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO NOTHING"
                ),
                (name, default),
            )
        row = self._one("SELECT value FROM {p}api_state WHERE name = ?", (name,))
        return str(row["value"])

    def set_state(self, name: str, value: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "INSERT INTO {p}api_state (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
                ),
                (name, value),
            )

    def count_tokens(self) -> int:
        row = self._one("SELECT COUNT(*) AS n FROM {p}api_tokens", ())
        return int(row["n"])


class LedgerSQLiteRecorder(_ApiTables, SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *(self._q(t) for t in _TABLES)]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._mark(c, stored_events, kwargs.get("requests"))
        return super()._insert_events(c, stored_events, **kwargs)


class LedgerPostgresRecorder(_ApiTables, PostgresApplicationRecorder):
    prefix = "pledger_"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(SQL(self._q(t)) for t in _TABLES)  # type: ignore[misc]

    def _q(self, statement: str) -> str:
        return statement.replace("{p}", self.prefix).replace("?", "%s")

    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._mark(curs, stored_events, kwargs.get("requests"))
        super()._insert_events(curs, stored_events, **kwargs)
