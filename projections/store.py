"""The materialised views: tables kept by the ledger projection, with their tracking record.

Every write to these tables happens in the same transaction as the tracking record of the
last event it reflects (eventsourcing's tracking recorders), so a redelivered event changes
nothing and a restart resumes where it stopped.

Tables (prefixed ``ledger_views_`` on PostgreSQL, where they share the event log's database;
unprefixed in the SQLite file beside the event log):

    entries     every event of every stream as the API shows it, with the position of the
                retraction that cancelled it, if any; indexed by stream and occurred_at, so that
                any (as_of, position) question is a range scan, never a replay of the log
    partners    each partner's current profile, stage, cadence and last two-way touch
    coalitions  each coalition's name
    chain_head  the ledger digest after the last event, and digests every 256 events below it
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import orjson
from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.sql import SQL

from domain.chained import ChainedAggregate
from domain.hashing import GENESIS, digest_step, format_instant, parse_instant
from domain.serialization import stream_type_of
from projections.folds import Entry, fold_partner

__all__ = [
    "CHECKPOINT_EVERY",
    "LedgerView",
    "PostgresLedgerView",
    "SQLiteLedgerView",
    "StoredEntry",
]

CHECKPOINT_EVERY = 256
APPLICATION_NAME = "pledger"

_TABLES = [
    """CREATE TABLE IF NOT EXISTS {p}entries (
        position BIGINT PRIMARY KEY,
        stream_id TEXT NOT NULL,
        stream_type TEXT NOT NULL,
        version INTEGER NOT NULL,
        type TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        retracted_pos BIGINT)""",
    "CREATE INDEX IF NOT EXISTS {p}entries_stream ON {p}entries (stream_id, occurred_at, version)",
    "CREATE INDEX IF NOT EXISTS {p}entries_stream_version ON {p}entries (stream_id, version)",
    "CREATE INDEX IF NOT EXISTS {p}entries_type ON {p}entries (type, occurred_at)",
    """CREATE TABLE IF NOT EXISTS {p}partners (
        partner_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        stage TEXT NOT NULL,
        region TEXT,
        roles TEXT NOT NULL,
        communities TEXT NOT NULL,
        cadence_days INTEGER NOT NULL,
        registered_at TEXT NOT NULL,
        registered_pos BIGINT NOT NULL,
        last_touch_at TEXT,
        latest_occurred_at TEXT NOT NULL,
        version INTEGER NOT NULL,
        position BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {p}partners_name ON {p}partners (name)",
    """CREATE TABLE IF NOT EXISTS {p}coalitions (
        coalition_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        formed_at TEXT NOT NULL,
        version INTEGER NOT NULL,
        position BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {p}digests (
        position BIGINT PRIMARY KEY,
        digest TEXT NOT NULL,
        events BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {p}chain_head (
        id INTEGER PRIMARY KEY,
        position BIGINT NOT NULL,
        digest TEXT NOT NULL,
        events BIGINT NOT NULL)""",
]
_VIEW_TABLES = ("entries", "partners", "coalitions", "digests", "chain_head")

# Events whose effect on a partner's current row depends on world order (occurred_at):
_PROFILE_TYPES = {"profile_updated", "stage_changed", "checkin_cadence_agreed"}
_ENTRY_COLUMNS = (
    "position, stream_id, stream_type, version, type, occurred_at, recorded_at, recorded_by, "
    "data, prev_hash, hash, retracted_pos"
)


@dataclass(frozen=True)
class StoredEntry:
    """A row of ``entries`` ready to insert."""

    position: int
    stream_id: str
    stream_type: str
    version: int
    type: str
    occurred_at: str
    recorded_at: str
    recorded_by: str
    data: str
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, event: ChainedAggregate.Event, position: int) -> StoredEntry:
        return cls(
            position=position,
            stream_id=str(event.originator_id),
            stream_type=stream_type_of(event),
            version=event.originator_version,
            type=event.data.TYPE,
            occurred_at=format_instant(event.occurred_at),
            recorded_at=format_instant(event.timestamp),
            recorded_by=event.recorded_by,
            data=orjson.dumps(event.data.model_dump(mode="json")).decode(),
            prev_hash=event.prev_hash,
            hash=event.hash,
        )


def entry_from_row(row: Any, position: int | None = None) -> Entry:
    retracted_pos = row["retracted_pos"]
    return Entry(
        position=row["position"],
        stream_id=row["stream_id"],
        version=row["version"],
        type=row["type"],
        occurred_at=parse_instant(row["occurred_at"]),
        data=orjson.loads(row["data"]),
        recorded_at=row["recorded_at"],
        recorded_by=row["recorded_by"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        retracted=retracted_pos is not None and (position is None or retracted_pos <= position),
    )


class LedgerView(TrackingRecorder):
    """Dialect-neutral logic of the views; the two subclasses below bind it to a store."""

    prefix: ClassVar[str] = ""
    datastore: Any

    def _q(self, statement: str) -> str:
        return statement.replace("{p}", self.prefix)

    def _insert_tracking(self, c: Any, tracking: Tracking) -> None:  # provided by the recorder
        raise NotImplementedError

    # ---- writing ------------------------------------------------------------------------

    def processed_position(self) -> int:
        return self.max_tracking_id(APPLICATION_NAME) or 0

    def process(self, items: Sequence[tuple[ChainedAggregate.Event, int]]) -> int:
        """Reflect events (with their positions, in order) and track the last, atomically.

        Events at or below the tracked position are skipped, so redelivery changes nothing.
        Returns how many events were applied.
        """
        if not items:
            return 0
        with self.datastore.transaction(commit=True) as c:
            done = self._tracked(c)
            fresh = [(event, position) for event, position in items if position > done]
            if not fresh:
                return 0
            entries = [StoredEntry.of(event, position) for event, position in fresh]
            c.executemany(
                self._q(
                    f"INSERT INTO {{p}}entries ({_ENTRY_COLUMNS}) VALUES ({', '.join('?' * 12)})"
                ),
                [(*vars(e).values(), None) for e in entries],
            )
            for entry in entries:
                self._apply(c, entry)
            self._extend_chain(c, entries)
            self._insert_tracking(c, Tracking(APPLICATION_NAME, entries[-1].position))
        return len(entries)

    def _tracked(self, c: Any) -> int:
        c.execute(self._q(self._select_tracking_statement()), (APPLICATION_NAME,))
        row = c.fetchone()
        return int(row["n"] or 0) if row else 0

    def _select_tracking_statement(self) -> str:
        raise NotImplementedError

    def _apply(self, c: Any, entry: StoredEntry) -> None:
        if entry.stream_type == "coalition":
            if entry.type == "coalition_formed":
                name = orjson.loads(entry.data)["name"]
                c.execute(
                    self._q(
                        "INSERT INTO {p}coalitions "
                        "(coalition_id, name, formed_at, version, position) VALUES (?, ?, ?, ?, ?)"
                    ),
                    (entry.stream_id, name, entry.occurred_at, entry.version, entry.position),
                )
            else:
                c.execute(
                    self._q(
                        "UPDATE {p}coalitions SET version = ?, position = ? WHERE coalition_id = ?"
                    ),
                    (entry.version, entry.position, entry.stream_id),
                )
            return
        if entry.type == "partner_registered":
            data = orjson.loads(entry.data)
            c.execute(
                self._q(
                    "INSERT INTO {p}partners (partner_id, name, kind, stage, region, roles, "
                    "communities, cadence_days, registered_at, registered_pos, last_touch_at, "
                    "latest_occurred_at, version, position) "
                    "VALUES (?, ?, ?, 'prospect', ?, ?, ?, 30, ?, ?, NULL, ?, ?, ?)"
                ),
                (
                    entry.stream_id,
                    data["name"],
                    data["kind"],
                    data["region"],
                    orjson.dumps(data["roles"]).decode(),
                    orjson.dumps(data["communities"]).decode(),
                    entry.occurred_at,
                    entry.position,
                    entry.occurred_at,
                    entry.version,
                    entry.position,
                ),
            )
            return
        if entry.type == "entry_retracted":
            target = orjson.loads(entry.data)["version"]
            c.execute(
                self._q(
                    "UPDATE {p}entries SET retracted_pos = ? WHERE stream_id = ? AND version = ?"
                ),
                (entry.position, entry.stream_id, target),
            )
            self._refold_partner(c, entry.stream_id)
            return
        c.execute(
            self._q("SELECT latest_occurred_at FROM {p}partners WHERE partner_id = ?"),
            (entry.stream_id,),
        )
        row = c.fetchone()
        latest = row["latest_occurred_at"] if row else ""
        if entry.type in _PROFILE_TYPES and entry.occurred_at < latest:
            self._refold_partner(c, entry.stream_id)  # a backfilled change: fold in world order
            return
        data = orjson.loads(entry.data)
        sets: list[str] = ["version = ?", "position = ?"]
        params: list[Any] = [entry.version, entry.position]
        if entry.occurred_at > latest:
            sets.append("latest_occurred_at = ?")
            params.append(entry.occurred_at)
        if entry.type == "stage_changed":
            sets.append("stage = ?")
            params.append(data["stage"])
        elif entry.type == "checkin_cadence_agreed":
            sets.append("cadence_days = ?")
            params.append(data["every_days"])
        elif entry.type == "profile_updated":
            for column in ("name", "kind", "region"):
                if data.get(column) is not None:
                    sets.append(f"{column} = ?")
                    params.append(data[column])
            for column in ("roles", "communities"):
                if data.get(column) is not None:
                    sets.append(f"{column} = ?")
                    params.append(orjson.dumps(data[column]).decode())
        c.execute(
            self._q(f"UPDATE {{p}}partners SET {', '.join(sets)} WHERE partner_id = ?"),
            (*params, entry.stream_id),
        )
        if entry.type == "meeting_held" or (
            entry.type == "contact_made" and data["direction"] == "inbound"
        ):
            c.execute(
                self._q(
                    "UPDATE {p}partners SET last_touch_at = ? WHERE partner_id = ? "
                    "AND (last_touch_at IS NULL OR last_touch_at < ?)"
                ),
                (entry.occurred_at, entry.stream_id, entry.occurred_at),
            )

    def _refold_partner(self, c: Any, partner_id: str) -> None:
        """Rewrite a partner's current row from its counting entries, in world order."""
        c.execute(
            self._q(
                f"SELECT {_ENTRY_COLUMNS} FROM {{p}}entries WHERE stream_id = ? "
                "AND retracted_pos IS NULL AND type <> 'entry_retracted' "
                "ORDER BY occurred_at, version"
            ),
            (partner_id,),
        )
        entries = [entry_from_row(row) for row in c.fetchall()]
        snap = fold_partner(partner_id, entries)
        c.execute(
            self._q(
                "SELECT MAX(version) AS version, MAX(position) AS position, "
                "MAX(occurred_at) AS latest FROM {p}entries WHERE stream_id = ?"
            ),
            (partner_id,),
        )
        row = c.fetchone()
        version, position, latest = row["version"], row["position"], row["latest"]
        profile = snap.profile
        c.execute(
            self._q(
                "UPDATE {p}partners SET name = ?, kind = ?, region = ?, roles = ?, "
                "communities = ?, stage = ?, cadence_days = ?, last_touch_at = ?, "
                "latest_occurred_at = ?, version = ?, position = ? WHERE partner_id = ?"
            ),
            (
                profile["name"],
                profile["kind"],
                profile["region"],
                orjson.dumps(profile["roles"]).decode(),
                orjson.dumps(profile["communities"]).decode(),
                snap.stage,
                snap.cadence_days,
                format_instant(snap.last_touch_at) if snap.last_touch_at else None,
                latest,
                version,
                position,
                partner_id,
            ),
        )

    def _extend_chain(self, c: Any, entries: Iterable[StoredEntry]) -> None:
        c.execute(self._q("SELECT position, digest, events FROM {p}chain_head WHERE id = 1"))
        row = c.fetchone()
        digest, events = (row["digest"], row["events"]) if row else (GENESIS, 0)
        checkpoints = []
        position = 0
        for entry in entries:
            digest = digest_step(digest, entry.hash)
            events += 1
            position = entry.position
            if events % CHECKPOINT_EVERY == 0:
                checkpoints.append((position, digest, events))
        if checkpoints:
            c.executemany(
                self._q("INSERT INTO {p}digests (position, digest, events) VALUES (?, ?, ?)"),
                checkpoints,
            )
        c.execute(
            self._q(
                "INSERT INTO {p}chain_head (id, position, digest, events) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET position = excluded.position, "
                "digest = excluded.digest, events = excluded.events"
            ),
            (position, digest, events),
        )

    # ---- reading ------------------------------------------------------------------------

    def select(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._q(statement), tuple(params))
            return list(c.fetchall())

    def counting_entries(
        self,
        as_of: datetime,
        position: int,
        *,
        stream_ids: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
    ) -> dict[str, list[Entry]]:
        """The entries that count at (as_of, position), by stream, in world order."""
        clauses = [
            "position <= ?",
            "occurred_at <= ?",
            "(retracted_pos IS NULL OR retracted_pos > ?)",
            "type <> 'entry_retracted'",
        ]
        params: list[Any] = [position, format_instant(as_of), position]
        if stream_ids is not None:
            if not stream_ids:
                return {}
            clauses.append(f"stream_id IN ({', '.join('?' * len(stream_ids))})")
            params.extend(stream_ids)
        if types is not None:
            clauses.append(f"type IN ({', '.join('?' * len(types))})")
            params.extend(types)
        rows = self.select(
            f"SELECT {_ENTRY_COLUMNS} FROM {{p}}entries WHERE {' AND '.join(clauses)} "
            "ORDER BY stream_id, occurred_at, version",
            params,
        )
        grouped: dict[str, list[Entry]] = {}
        for row in rows:
            grouped.setdefault(row["stream_id"], []).append(entry_from_row(row))
        return grouped

    def stream_entries(
        self,
        stream_id: str,
        position: int,
        *,
        as_of: datetime | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
        types: Sequence[str] | None = None,
        after: tuple[str, int] | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """A stream's entries up to ``position`` in world order, retracted ones flagged."""
        clauses, params = ["stream_id = ?", "position <= ?"], [stream_id, position]
        if as_of is not None:
            clauses.append("occurred_at <= ?")
            params.append(format_instant(as_of))
        if occurred_from is not None:
            clauses.append("occurred_at >= ?")
            params.append(format_instant(occurred_from))
        if occurred_to is not None:
            clauses.append("occurred_at <= ?")
            params.append(format_instant(occurred_to))
        if types:
            clauses.append(f"type IN ({', '.join('?' * len(types))})")
            params.extend(types)
        if after is not None:
            clauses.append("(occurred_at > ? OR (occurred_at = ? AND version > ?))")
            params.extend([after[0], after[0], after[1]])
        statement = (
            f"SELECT {_ENTRY_COLUMNS} FROM {{p}}entries WHERE {' AND '.join(clauses)} "
            "ORDER BY occurred_at, version"
        )
        if limit is not None:
            statement += f" LIMIT {int(limit)}"
        return [entry_from_row(row, position) for row in self.select(statement, params)]

    def entry(self, stream_id: str, version: int) -> Entry | None:
        rows = self.select(
            f"SELECT {_ENTRY_COLUMNS} FROM {{p}}entries WHERE stream_id = ? AND version = ?",
            (stream_id, version),
        )
        return entry_from_row(rows[0]) if rows else None

    def digest_at(self, position: int) -> tuple[str, int]:
        """The ledger digest after every event up to ``position``, and how many events."""
        rows = self.select(
            "SELECT position, digest, events FROM {p}digests WHERE position <= ? "
            "ORDER BY position DESC LIMIT 1",
            (position,),
        )
        start, digest, events = (
            (rows[0]["position"], rows[0]["digest"], rows[0]["events"]) if rows else (0, GENESIS, 0)
        )
        for row in self.select(
            "SELECT hash FROM {p}entries WHERE position > ? AND position <= ? ORDER BY position",
            (start, position),
        ):
            digest = digest_step(digest, row["hash"])
            events += 1
        return digest, events

    def drop_tables(self) -> None:
        """Forget every view and its tracking, so that a rebuild starts from position 0."""
        with self.datastore.transaction(commit=True) as c:
            for table in _VIEW_TABLES:
                c.execute(self._q(f"DELETE FROM {{p}}{table}"))
            c.execute(self._q(self._delete_tracking_statement()), (APPLICATION_NAME,))

    def _delete_tracking_statement(self) -> str:
        raise NotImplementedError


class SQLiteLedgerView(SQLiteTrackingRecorder, LedgerView):
    """The views in their own SQLite file beside the event log."""

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *(self._q(t) for t in _TABLES)]

    def _select_tracking_statement(self) -> str:
        return "SELECT MAX(notification_id) AS n FROM tracking WHERE application_name = ?"

    def _delete_tracking_statement(self) -> str:
        return "DELETE FROM tracking WHERE application_name = ?"


class PostgresLedgerView(PostgresTrackingRecorder, LedgerView):
    """The views in the event log's PostgreSQL database, tables prefixed ``ledger_views_``."""

    prefix = "ledger_views_"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(SQL(self._q(t)) for t in _TABLES)  # type: ignore[misc]

    def _q(self, statement: str) -> str:
        return statement.replace("{p}", self.prefix).replace("?", "%s")

    def _select_tracking_statement(self) -> str:
        return (
            f"SELECT MAX(notification_id) AS n FROM {self.tracking_table_name} "
            "WHERE application_name = ?"
        )

    def _delete_tracking_statement(self) -> str:
        return f"DELETE FROM {self.tracking_table_name} WHERE application_name = ?"
