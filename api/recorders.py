"""The event log's recorders, extended with what the API keeps beside the log.

Two small tables live in the event log's own database, outside the log:

    api_requests   one row per Idempotency-Key, inserted in the same transaction as the
                   events the request recorded, so a retried request can never record twice
    api_tokens     credentials: only a SHA-256 of each token, its name, role and coalition
    api_state      named values every process shares: the web sessions' signing secret
    api_verification the latest completed verification of the log and the run in progress
                   (one row each, ``latest`` and ``running``): every server process of the
                   ledger answers ``GET /v1/audit/verify`` from it (api.verifying)
    api_sessions   web sign-in sessions (the cookie names one; signing out ends it here)
    api_token_terms a token's partner (for a partner token), expiry, revocation, last use
                   and calendar feed (its secret's SHA-256), beside ``api_tokens``
    import_rows    one row per imported CSV row: its fingerprint (content and partner) and
                   the event it recorded, inserted in the same transaction as that event, so a
                   file run again (even after a crash past its commit) records nothing twice
    personal_keys  one AES-256 key per data subject
    personal_data  each event's personal values with their salts, encrypted under its
                   subject's key, inserted in the same transaction as the event; erasure
                   deletes a subject's rows and key (domain.personal, issue 16)

Reading events back (``select_events``, ``select_notifications``), the recorders add each
event's disclosed personal values, so that the mapper and the read side see them.

Partners' snapshots (issue 17 item 6) live in the library's snapshot table beside the log
(``stored_snapshots`` on SQLite, ``pledger_snapshots`` on PostgreSQL), made by
:meth:`snapshot_recorder`. A save given ``snapshots`` inserts them in the events' transaction
and deletes the older snapshots of those streams; an erasure deletes every snapshot of the
partner erased, in its transaction (a snapshot holds the partner's name and contacts in clear).

They extend eventsourcing's SQLite and PostgreSQL application recorders through the
library's APPLICATION_RECORDER_TOPIC setting; the log's own tables are untouched.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteApplicationRecorder, SQLiteCursor
from psycopg.errors import LockNotAvailable
from psycopg.sql import SQL

from domain.errors import Busy
from domain.personal import Disclosed, Erasure, Vault, decrypt_rows, encrypt, new_key
from domain.serialization import (
    DisclosedNotification,
    DisclosedStoredEvent,
    PersonalStoredEvent,
)
from projections.pgschema import SchemaOnce, table_exists

__all__ = [
    "API_TABLES",
    "POSTGRES_TOPIC",
    "SQLITE_TOPIC",
    "VERIFICATION_TABLE",
    "ImportedRow",
    "LedgerPostgresRecorder",
    "LedgerSQLiteRecorder",
    "RequestMark",
    "StoredRequest",
    "StoredToken",
]

SQLITE_TOPIC = "api.recorders:LedgerSQLiteRecorder"
SQLITE_SNAPSHOTS = "stored_snapshots"  # the library's name for the snapshot table
COPY_ABOVE = 1000  # a PostgreSQL save of more events than this goes by COPY, not one INSERT
CONNECTION_ATTEMPTS = 5  # a PostgreSQL save whose connection failed is tried again this often
CONNECTION_RETRY_SECONDS = 0.2
POSTGRES_TOPIC = "api.recorders:LedgerPostgresRecorder"

API_TABLES = (
    "api_requests",
    "api_tokens",
    "api_state",
    "api_token_terms",
    "api_sessions",
    "import_rows",
    # The personal-data vault (domain.personal): format 2 events need it to disclose, and to
    # verify, their personal values.
    "personal_keys",
    "personal_data",
)
# Not moved by `pledger copy` (so not in API_TABLES): a verification speaks only of the store
# it read; the copy is verified on its own (`pledger copy` verifies both sides, and a server
# started on the copy verifies it again).
VERIFICATION_TABLE = "api_verification"
_RELEASE_CLAIM = "DELETE FROM {p}api_verification WHERE name = 'running' AND run_id = ?"
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
    # A token's terms beside it (a table of its own, so ledgers made before keep their tokens):
    # the partner a partner token is bound to, expiry, revocation, when it was last used, and
    # the hash of its calendar feed's secret.
    """CREATE TABLE IF NOT EXISTS {p}api_token_terms (
        token_hash TEXT PRIMARY KEY,
        partner_id TEXT,
        expires_at TEXT,
        revoked_at TEXT,
        last_used_at TEXT,
        feed_hash TEXT UNIQUE)""",
    # Web sign-in sessions, kept here so that signing out ends one on the server too (the
    # browser's cookie only names the session).
    """CREATE TABLE IF NOT EXISTS {p}api_sessions (
        session_id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        ended_at TEXT)""",
    # name: 'latest' (the latest completed run; value its result, JSON) or 'running' (the run in
    # progress; value its progress, JSON). touched_at: when the run finished, or the running
    # one's last sign of life (a run not heard of for VERIFY_CLAIM_STALE seconds is taken over).
    """CREATE TABLE IF NOT EXISTS {p}api_verification (
        name TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        touched_at TEXT NOT NULL,
        value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {p}import_rows (
        fingerprint TEXT PRIMARY KEY,
        stream_id TEXT NOT NULL,
        version INTEGER NOT NULL)""",
]
# How many fingerprints one look-up asks about (well under SQLite's 32,766 parameters).
FINGERPRINTS_PER_QUERY = 500


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
class ImportedRow:
    """Saved with an import's events: a row's fingerprint and the first event it recorded."""

    fingerprint: str
    stream_id: str
    version: int


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
    created_at: str = ""
    partner_id: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    last_used_at: str | None = None
    has_feed: bool = False

    @property
    def token_id(self) -> str:
        """A short name for the token that is no secret (the start of its hash)."""
        return self.token_hash[:12]


class _ApiTables:
    """Dialect-neutral statements; subclasses say how placeholders and prefixes look."""

    datastore: Any
    prefix = ""
    vault: Vault
    events_table_name: str
    # The snapshot table's recorder, once snapshot_recorder() made it.
    snapshots: Any = None

    def _q(self, statement: str) -> str:
        return statement.replace("{p}", self.prefix)

    # ---- partners' snapshots (issue 17 item 6) ---------------------------------------------

    def _snapshots_table(self) -> str:
        raise NotImplementedError

    def _has_snapshot_table(self, c: Any) -> bool:
        raise NotImplementedError

    def _insert_snapshot_rows(self, c: Any, stored: Sequence[StoredEvent]) -> None:
        raise NotImplementedError

    def _keep_snapshots(self, c: Any, stored: Sequence[StoredEvent] | None) -> None:
        """Insert ``stored`` snapshots and delete the older ones of their streams (same
        transaction as the events)."""
        if not stored:
            return
        mark = self.vault.mark
        c.executemany(
            f"DELETE FROM {self._snapshots_table()} "
            f"WHERE originator_id = {mark} AND originator_version < {mark}",
            [(self._stream_key(str(s.originator_id)), s.originator_version) for s in stored],
        )
        self._insert_snapshot_rows(c, stored)

    def _drop_snapshots(self, c: Any, erasure: Erasure) -> None:
        """Delete every snapshot of the partners whose subjects ``erasure`` shreds (a subject
        is a partner's id, or ``<partner id>/<person key>`` for a contact person)."""
        if not self._has_snapshot_table(c):
            return  # (made by the first Partnerships on this ledger: none was ever taken)
        streams = sorted({subject.split("/")[0] for subject in erasure.subject_ids})
        c.executemany(
            f"DELETE FROM {self._snapshots_table()} WHERE originator_id = {self.vault.mark}",
            [(self._stream_key(stream),) for stream in streams],
        )

    def count_snapshots(self, stream_id: UUID | None = None) -> int:
        """How many snapshots are stored (of one stream, or of all)."""
        with self.datastore.transaction(commit=False) as c:
            if stream_id is None:
                c.execute(f"SELECT COUNT(*) AS n FROM {self._snapshots_table()}")
            else:
                c.execute(
                    f"SELECT COUNT(*) AS n FROM {self._snapshots_table()} "
                    f"WHERE originator_id = {self.vault.mark}",
                    (self._stream_key(str(stream_id)),),
                )
            return int(c.fetchone()["n"])

    def _stream_key(self, stream_id: str) -> Any:
        """A stream id as the log's table keeps it (SQLite: 32 hex digits)."""
        return UUID(stream_id)

    # ---- personal data (issue 16) --------------------------------------------------------

    def _seal_personal(self, c: Any, stored_events: Sequence[StoredEvent]) -> None:
        """Encrypt and insert the personal values of ``stored_events`` (same transaction)."""
        vault = self.vault
        keys: dict[str, bytes] = {}
        rows = []
        for event in stored_events:
            if not isinstance(event, PersonalStoredEvent):
                continue
            for subject, plaintext in event.rows:
                key = keys.get(subject)
                if key is None:
                    c.execute(vault.insert_key_statement(), (subject, new_key()))
                    c.execute(vault.select_key_statement(), (subject,))
                    key = keys[subject] = bytes(c.fetchone()["key"])
                stream_id = str(event.originator_id)
                version = event.originator_version
                nonce, sealed = encrypt(key, stream_id, version, subject, plaintext)
                rows.append((stream_id, version, subject, nonce, sealed))
        if rows:
            c.executemany(vault.insert_row_statement(), rows)

    def _shred(self, c: Any, erasure: Erasure | None) -> None:
        """Delete the subjects' personal rows and keys; overwrite format 1 states (same
        transaction as the ``personal_data_erased`` event)."""
        if erasure is None:
            return
        self._drop_snapshots(c, erasure)
        for subject_id in erasure.subject_ids:
            for statement in self.vault.shred_statements():
                c.execute(statement, (subject_id,))
        mark = self.vault.mark
        for stream_id, version, state in erasure.rewrites:
            c.execute(
                f"UPDATE {self._events_table()} SET state = {mark} "
                f"WHERE originator_id = {mark} AND originator_version = {mark}",
                (state, self._stream_key(stream_id), version),
            )

    def _events_table(self) -> str:
        return self.events_table_name

    def _disclosed(self, c: Any, statement: str, params: Sequence[Any]) -> dict[Any, Disclosed]:
        c.execute(statement, tuple(params))
        return decrypt_rows(
            (
                r["originator_id"],
                r["originator_version"],
                r["subject_id"],
                r["nonce"],
                r["sealed"],
                r["key"],
            )
            for r in c.fetchall()
        )

    def disclosed_of_events(self, pairs: Sequence[tuple[str, int]]) -> dict[Any, Disclosed]:
        """``{(stream id, version): disclosed}`` of these events (those with values held)."""
        found: dict[Any, Disclosed] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(pairs), 400):
                chunk = pairs[start : start + 400]
                statement = self.vault.events_statement(len(chunk))
                found.update(self._disclosed(c, statement, self.vault.event_params(chunk)))
        return found

    def disclosed_of_streams(self, stream_ids: Sequence[str]) -> dict[Any, Disclosed]:
        """``{(stream id, version): disclosed}`` of every event of these streams."""
        found: dict[Any, Disclosed] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(stream_ids), 400):
                chunk = list(stream_ids[start : start + 400])
                found.update(self._disclosed(c, self.vault.streams_statement(len(chunk)), chunk))
        return found

    def disclosed_of_subject(self, subject_id: str) -> dict[Any, Disclosed]:
        """``{(stream id, version): disclosed}`` of every event holding the subject's values."""
        with self.datastore.transaction(commit=False) as c:
            return self._disclosed(c, self.vault.subject_statement(), (subject_id,))

    def select_events(self, originator_id: UUID | str, **kwargs: Any) -> Sequence[StoredEvent]:
        """The library's stream read, each event with its disclosed personal values."""
        events = super().select_events(originator_id, **kwargs)  # type: ignore[misc]
        if not any(b'"personal":' in e.state for e in events):
            return list(events)
        stream_id = str(events[0].originator_id) if events else str(originator_id)
        stream_id = str(UUID(stream_id))
        disclosed = self.disclosed_of_streams([stream_id])
        return [
            DisclosedStoredEvent(
                e.originator_id,
                e.originator_version,
                e.topic,
                e.state,
                disclosed.get((stream_id, e.originator_version)),
            )
            for e in events
        ]

    def select_notifications(self, *args: Any, **kwargs: Any) -> Sequence[Any]:
        """The library's log read, each event with its disclosed personal values."""
        page = super().select_notifications(*args, **kwargs)  # type: ignore[misc]
        pairs = [
            (str(UUID(str(n.originator_id))), n.originator_version)
            for n in page
            if b'"personal":' in n.state
        ]
        if not pairs:
            return list(page)
        disclosed = self.disclosed_of_events(pairs)
        return [
            DisclosedNotification(
                n.originator_id,
                n.originator_version,
                n.topic,
                n.state,
                n.id,
                disclosed.get((str(UUID(str(n.originator_id))), n.originator_version)),
            )
            for n in page
        ]

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

    def _note_rows(self, c: Any, rows: Sequence[ImportedRow] | None) -> None:
        if rows:
            c.executemany(
                self._q(
                    "INSERT INTO {p}import_rows (fingerprint, stream_id, version) VALUES (?, ?, ?)"
                ),
                [(row.fingerprint, row.stream_id, row.version) for row in rows],
            )

    def imported_fingerprints(self, fingerprints: Sequence[str]) -> set[str]:
        """Which of ``fingerprints`` an earlier import recorded (see ``import_rows``)."""
        found: set[str] = set()
        for start in range(0, len(fingerprints), FINGERPRINTS_PER_QUERY):
            chunk = fingerprints[start : start + FINGERPRINTS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            with self.datastore.transaction(commit=False) as c:
                c.execute(
                    self._q(
                        f"SELECT fingerprint FROM {{p}}import_rows WHERE fingerprint IN ({marks})"
                    ),
                    tuple(chunk),
                )
                found.update(str(row["fingerprint"]) for row in c.fetchall())
        return found

    def api_tables(self) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
        """Every row of the tables beside the log (:data:`API_TABLES`), with their column
        names: what ``pledger copy`` moves with the events."""
        tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        with self.datastore.transaction(commit=False) as c:
            for table in API_TABLES:
                c.execute(self._q(f"SELECT * FROM {{p}}{table}"))
                described = getattr(c, "sqlite_cursor", c).description  # the library wraps it
                columns = [column[0] for column in described]
                rows = [
                    tuple(row.values()) if isinstance(row, dict) else tuple(row)
                    for row in c.fetchall()
                ]
                tables[table] = (columns, rows)
        return tables

    def insert_api_tables(
        self, c: Any, tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]]
    ) -> None:
        """Insert rows :meth:`api_tables` read (of another ledger), in the transaction ``c``."""
        for table, (columns, rows) in tables.items():
            if rows:
                marks = ", ".join("?" * len(columns))
                c.executemany(
                    self._q(f"INSERT INTO {{p}}{table} ({', '.join(columns)}) VALUES ({marks})"),
                    rows,
                )

    def count_api_rows(self, c: Any) -> int:
        """How many rows the tables beside the log hold (0 in a new ledger)."""
        total = 0
        for table in API_TABLES:
            c.execute(self._q(f"SELECT COUNT(*) AS n FROM {{p}}{table}"))
            row = c.fetchone()
            total += int(row["n"] if isinstance(row, dict) else row[0])
        return total

    def _one(self, statement: str, params: Sequence[Any]) -> Any:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._q(statement), tuple(params))
            return c.fetchone()

    def _commit(self, statement: str, params: Sequence[Any]) -> None:
        """Run one writing statement in a transaction of its own."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._q(statement), tuple(params))

    def find_request(self, key_hash: str) -> StoredRequest | None:
        row = self._one(
            "SELECT fingerprint, route, stream_id, version FROM {p}api_requests WHERE key_hash = ?",
            (key_hash,),
        )
        if row is None:
            return None
        return StoredRequest(row["fingerprint"], row["route"], row["stream_id"], row["version"])

    def insert_token(
        self,
        token_hash: str,
        token: StoredToken,
        created_at: str,
        expires_at: str | None = None,
    ) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "INSERT INTO {p}api_tokens (token_hash, name, role, coalition_id, created_at) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                (token_hash, token.name, token.role, token.coalition_id, created_at),
            )
            c.execute(
                self._q(
                    "INSERT INTO {p}api_token_terms (token_hash, partner_id, expires_at) "
                    "VALUES (?, ?, ?)"
                ),
                (token_hash, token.partner_id, expires_at),
            )

    _CREDENTIAL_ROWS = (
        "SELECT t.name, t.role, t.coalition_id, t.token_hash, t.created_at, l.partner_id, "
        "l.expires_at, l.revoked_at, l.last_used_at, l.feed_hash "
        "FROM {p}api_tokens t LEFT JOIN {p}api_token_terms l ON l.token_hash = t.token_hash "
    )

    @staticmethod
    def _token(row: Any) -> StoredToken:
        return StoredToken(
            row["name"],
            row["role"],
            row["coalition_id"],
            row["token_hash"],
            row["created_at"],
            row["partner_id"],
            row["expires_at"],
            row["revoked_at"],
            row["last_used_at"],
            row["feed_hash"] is not None,
        )

    def find_token(self, token_hash: str) -> StoredToken | None:
        row = self._one(self._CREDENTIAL_ROWS + "WHERE t.token_hash = ?", (token_hash,))
        return None if row is None else self._token(row)

    def find_feed(self, feed_hash: str) -> StoredToken | None:
        """The token whose calendar feed secret has this SHA-256."""
        row = self._one(self._CREDENTIAL_ROWS + "WHERE l.feed_hash = ?", (feed_hash,))
        return None if row is None else self._token(row)

    def list_tokens(self) -> list[StoredToken]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._q(self._CREDENTIAL_ROWS + "ORDER BY t.created_at, t.name"))
            return [self._token(row) for row in c.fetchall()]

    def _set_life(self, token_hash: str, column: str, value: str | None) -> None:
        # ``column`` is one of this module's own names, never input.
        self._commit(
            f"INSERT INTO {{p}}api_token_terms (token_hash, {column}) VALUES (?, ?) "
            f"ON CONFLICT (token_hash) DO UPDATE SET {column} = excluded.{column}",
            (token_hash, value),
        )

    def revoke_token(self, token_hash: str, at: str) -> None:
        self._set_life(token_hash, "revoked_at", at)

    def touch_token(self, token_hash: str, at: str) -> None:
        self._set_life(token_hash, "last_used_at", at)

    def set_feed(self, token_hash: str, feed_hash: str | None) -> None:
        self._set_life(token_hash, "feed_hash", feed_hash)

    def open_session(self, session_id: str, token_hash: str, at: str) -> None:
        self._commit(
            "INSERT INTO {p}api_sessions (session_id, token_hash, created_at) VALUES (?, ?, ?)",
            (session_id, token_hash, at),
        )

    def end_session(self, session_id: str, at: str) -> None:
        self._commit(
            "UPDATE {p}api_sessions SET ended_at = ? WHERE session_id = ?", (at, session_id)
        )

    def session_token(self, session_id: str) -> str | None:
        """The token hash of a session still open, or None (unknown or ended)."""
        row = self._one(
            "SELECT token_hash FROM {p}api_sessions WHERE session_id = ? AND ended_at IS NULL",
            (session_id,),
        )
        return None if row is None else str(row["token_hash"])

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
        self._commit(
            "INSERT INTO {p}api_state (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # ---- verification runs (api.verifying) ------------------------------------------------

    @staticmethod
    def _verification_row(name: str, unless: str) -> str:
        """Write the ``name`` row (``run_id``, ``started_at``, ``touched_at``, ``value``),
        replacing the one there only where ``unless`` (a condition on it) holds."""
        return (
            "INSERT INTO {p}api_verification (name, run_id, started_at, touched_at, value) "
            f"VALUES ('{name}', ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "run_id = excluded.run_id, started_at = excluded.started_at, "
            "touched_at = excluded.touched_at, value = excluded.value "
            f"WHERE {{p}}api_verification.{unless}"
        )

    def claim_verification(self, run_id: str, at: str, stale_before: str, progress: str) -> bool:
        """Claim the ledger's one verification run for ``run_id`` (times as
        ``format_instant`` writes them, which sort as text); True when claimed: no run was in
        progress, or the one in progress was last heard of before ``stale_before`` (its process
        died). Atomic on both stores (one upsert; PostgreSQL locks the row it conflicts on)."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(self._verification_row("running", "touched_at < ?")),
                (run_id, at, at, progress, stale_before),
            )
            c.execute(self._q("SELECT run_id FROM {p}api_verification WHERE name = 'running'"), ())
            row = c.fetchone()
        return row is not None and row["run_id"] == run_id

    def touch_verification(self, run_id: str, at: str, progress: str) -> None:
        """The running ``run_id``'s sign of life, with its progress (JSON)."""
        self._commit(
            "UPDATE {p}api_verification SET touched_at = ?, value = ? "
            "WHERE name = 'running' AND run_id = ?",
            (at, progress, run_id),
        )

    def release_verification(self, run_id: str) -> None:
        """Give up ``run_id``'s claim (a run stopped before it finished)."""
        self._commit(_RELEASE_CLAIM, (run_id,))

    def record_verification(
        self, run_id: str, started_at: str, finished_at: str, result: str
    ) -> None:
        """Keep a finished run's ``result`` (JSON) as the latest, unless a run that started
        later has finished already; and end ``run_id``'s claim, in one transaction."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(self._verification_row("latest", "started_at <= excluded.started_at")),
                (run_id, started_at, finished_at, result),
            )
            c.execute(self._q(_RELEASE_CLAIM), (run_id,))
            # Before this table, the last result was kept in api_state (which `pledger copy`
            # moves to another store, where it would speak of a store it never read).
            c.execute(self._q("DELETE FROM {p}api_state WHERE name = 'last_verification'"), ())

    def verification_rows(self) -> dict[str, dict[str, str]]:
        """``{'latest': row, 'running': row}``, each present when there is one; a row is
        ``{run_id, started_at, touched_at, value}``."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                self._q(
                    "SELECT name, run_id, started_at, touched_at, value FROM {p}api_verification"
                ),
                (),
            )
            return {
                str(row["name"]): {
                    k: str(row[k]) for k in ("run_id", "started_at", "touched_at", "value")
                }
                for row in c.fetchall()
            }

    def count_tokens(self) -> int:
        row = self._one("SELECT COUNT(*) AS n FROM {p}api_tokens", ())
        return int(row["n"])


class LedgerSQLiteRecorder(_ApiTables, SQLiteApplicationRecorder):
    vault = Vault.of_store(postgres=False)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *(self._q(t) for t in _TABLES),
            *self.vault.create_statements(),
        ]

    def _stream_key(self, stream_id: str) -> str:
        return UUID(stream_id).hex

    def snapshot_recorder(self) -> SQLiteAggregateRecorder:
        """The library's recorder of the snapshot table, in this ledger's database."""
        if self.snapshots is None:
            self.snapshots = SQLiteAggregateRecorder(self.datastore, SQLITE_SNAPSHOTS)
            self.snapshots.create_table()
        return self.snapshots  # type: ignore[no-any-return]

    def _snapshots_table(self) -> str:
        return SQLITE_SNAPSHOTS

    def _has_snapshot_table(self, c: Any) -> bool:
        c.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SQLITE_SNAPSHOTS,)
        )
        return c.fetchone() is not None

    def _insert_snapshot_rows(self, c: Any, stored: Sequence[StoredEvent]) -> None:
        self.snapshot_recorder()._insert_events(c, stored)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._mark(c, stored_events, kwargs.get("requests"))
        self._note_rows(c, kwargs.get("import_rows"))
        self._seal_personal(c, stored_events)
        positions = super()._insert_events(c, stored_events, **kwargs)
        self._keep_snapshots(c, kwargs.get("snapshots"))
        if kwargs.get("erasure") is not None:
            # Overwrite the shredded rows' bytes with zeros as they are deleted (the scrub's
            # VACUUM then rewrites the file); https://sqlite.org/pragma.html#pragma_secure_delete
            c.execute("PRAGMA secure_delete = ON")
            self._shred(c, kwargs.get("erasure"))
        return positions


class LedgerPostgresRecorder(_ApiTables, SchemaOnce, PostgresApplicationRecorder):
    prefix = "pledger_"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.vault = Vault.of_store(postgres=True, schema=datastore.schema)
        self.sql_create_statements.extend(SQL(self._q(t)) for t in _TABLES)  # type: ignore[misc]
        self.sql_create_statements.extend(
            SQL(t)  # type: ignore[misc]
            for t in self.vault.create_statements()
        )

    def _events_table(self) -> str:
        return f'"{self.datastore.schema}".{self.events_table_name}'

    def snapshot_recorder(self) -> PostgresAggregateRecorder:
        """The library's recorder of the snapshot table (``pledger_snapshots``), its schema
        made under the schema lock as the log's is (projections.pgschema)."""
        if self.snapshots is None:
            table = self.events_table_name.removesuffix("_events") + "_snapshots"
            self.snapshots = PostgresSnapshotRecorder(self.datastore, events_table_name=table)
            self.snapshots.create_table()
        return self.snapshots  # type: ignore[no-any-return]

    def _snapshots_table(self) -> str:
        table = self.events_table_name.removesuffix("_events") + "_snapshots"
        return f'"{self.datastore.schema}".{table}'

    def _has_snapshot_table(self, c: Any) -> bool:
        return table_exists(c, self._snapshots_table())

    def _insert_snapshot_rows(self, c: Any, stored: Sequence[StoredEvent]) -> None:
        self.snapshot_recorder()._insert_stored_events(c, stored)

    def _q(self, statement: str) -> str:
        return statement.replace("{p}", self.prefix).replace("?", "%s")

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Record ``stored_events`` (and the ``requests`` marks given) in one transaction;
        returns their positions, in the order given.

        Unlike the library's insert, this one runs outside psycopg's pipeline mode, and sends
        more than ``COPY_ABOVE`` events by COPY rather than as one INSERT:

        * in pipeline mode a unique violation of a statement before the events' INSERT (the
          Idempotency-Key's row) surfaced as another error (``PipelineAborted``, a broken
          prepared statement) instead of ``IntegrityError``, and was retried ten times;
        * one INSERT of an import's 100,000 events in pipeline mode stalled (the client and the
          server each waiting for the other) while the log's table lock was held.

        Raises IntegrityError when a stream's version or a request's key is already on record,
        :class:`~domain.errors.Busy` when the log's table lock was not granted within the lock
        timeout (``POSTGRES_LOCK_TIMEOUT``, seconds), and the library's OperationalError or
        InterfaceError when the connection kept failing (retried ``CONNECTION_ATTEMPTS`` times:
        a failed transaction recorded nothing).
        """
        for attempt in range(1, CONNECTION_ATTEMPTS + 1):
            try:
                return self._insert_in_one_transaction(
                    stored_events,
                    kwargs.get("requests"),
                    kwargs.get("import_rows"),
                    kwargs.get("erasure"),
                    kwargs.get("snapshots"),
                )
            except OperationalError as error:
                if isinstance(error.__cause__, LockNotAvailable):
                    timeout = self.datastore.lock_timeout
                    raise Busy(
                        "The event log is locked by another writer (a large import?) and was "
                        f"not free within {timeout} s; nothing was recorded. Try again shortly.",
                        retry_after=max(1, timeout),
                    ) from error
                if attempt == CONNECTION_ATTEMPTS:
                    raise
            except InterfaceError:
                if attempt == CONNECTION_ATTEMPTS:
                    raise
            time.sleep(CONNECTION_RETRY_SECONDS)
        raise AssertionError("unreachable")  # pragma: no cover

    def _insert_in_one_transaction(
        self,
        stored_events: Sequence[StoredEvent],
        marks: Sequence[RequestMark] | None,
        import_rows: Sequence[ImportedRow] | None = None,
        erasure: Erasure | None = None,
        snapshots: Sequence[StoredEvent] | None = None,
    ) -> list[int]:
        with self.datastore.transaction(commit=True) as curs:
            self._mark(curs, stored_events, marks)
            self._note_rows(curs, import_rows)
            self._seal_personal(curs, stored_events)
            if len(stored_events) > COPY_ABOVE:
                copied = self._copy_stored_events(curs, stored_events)
                self._keep_snapshots(curs, snapshots)
                return copied
            self._insert_stored_events(curs, stored_events)  # takes the table lock, then inserts
            positions = list(self._fetch_ids_after_insert_events(curs, stored_events) or ())
            self._keep_snapshots(curs, snapshots)
            self._shred(curs, erasure)
            return positions

    def _copy_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent]) -> list[int]:
        """A large save (an import) by binary COPY, under the same table lock: the INSERT's
        array of composite values costs psycopg ~0.5 ms of Python a row to write as text; COPY
        sends the columns as they are. COPY takes the rows in order, each its next position, so
        the positions are the ones recorded after the lock was taken, in order (nobody else can
        insert while it is held); this is checked, not assumed."""
        self._lock_table(curs)
        self._notify_channel(curs)
        table = f"{self.datastore.schema}.{self.events_table_name}"
        curs.execute(f"SELECT COALESCE(MAX(notification_id), 0) AS n FROM {table}")
        before = curs.fetchone()["n"]
        columns = "originator_id, originator_version, topic, state"
        with curs.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([self.datastore.originator_id_type, "int8", "text", "bytea"])
            for event in stored_events:
                copy.write_row(
                    (event.originator_id, event.originator_version, event.topic, event.state)
                )
        # Only the ends are read back: converting every row in Python would leave the server
        # idle in the transaction for seconds (and past its idle timeout at 100,000 rows).
        curs.execute(
            f"SELECT originator_id, originator_version, notification_id FROM {table} "
            f"WHERE notification_id = (SELECT MIN(notification_id) FROM {table} "
            "  WHERE notification_id > %s) "
            f"OR notification_id = (SELECT MAX(notification_id) FROM {table}) "
            "ORDER BY notification_id",
            (before,),
        )
        ends = curs.fetchall()
        first, last = ends[0], ends[-1]
        expected = [
            (str(e.originator_id), e.originator_version)
            for e in (stored_events[0], stored_events[-1])
        ]
        found = [(str(r["originator_id"]), r["originator_version"]) for r in (first, last)]
        span = last["notification_id"] - first["notification_id"] + 1
        if found != expected or span != len(stored_events):
            msg = f"COPY recorded {found} over {span} positions; expected {expected}"
            raise ProgrammingError(msg)  # rolls the whole save back
        return list(range(first["notification_id"], last["notification_id"] + 1))


class PostgresSnapshotRecorder(SchemaOnce, PostgresAggregateRecorder):
    """The library's recorder of a PostgreSQL snapshot table, its schema made once whoever
    starts first (projections.pgschema)."""
