"""The event log's table read with SQL of our own, on SQLite and on PostgreSQL.

The library reads the log as ``Notification`` objects (``select_notifications``), which costs a
``UUID`` and a notification for every row: at a million events that is most of a rebuild. The
read side wants a stored event's columns only, so for what the library has no query for (one
stream's events with their positions, a stream's last version) and for the rebuild, which reads
every row, it queries the log's table directly, by its primary key (stream id, version) or by
position. The statements for both stores, and the one decoding of a stored row into an
:class:`Entry`, are here; :class:`projections.log.LogReader` and the rebuild both use them, so
every path gives the same entries. Nothing here writes to the log.

This module imports only the standard library, orjson and the pure folds (psycopg when it opens
PostgreSQL), so that the rebuild's worker processes start in a tenth of a second: the library
and the domain's models take longer to import than a rebuild of a small ledger.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from domain.errors import DamagedEvent
from domain.hashing import parse_instant
from domain.personal import Disclosed, Vault, decrypt_rows, disclose
from projections.folds import Entry

__all__ = [
    "FOLDED_PERSONAL",
    "LogTable",
    "OpenLog",
    "Topics",
    "decode_entry",
    "stream_id_text",
]

Topics = Mapping[str, tuple[str, str]]  # stored topic -> (event type, stream type)
# The event types whose personal values the views' folds read (names, communities and
# preferences of a profile; a commitment's description). A rebuild decrypts only these: the
# other entries it reads feed the folds alone, which never look at their summaries or notes.
FOLDED_PERSONAL = frozenset({"partner_registered", "profile_updated", "commitment_made"})


def decode_entry(
    topics: Topics,
    position: int,
    stream_id: str,
    version: int,
    topic: str,
    state: bytes,
    disclosed: Disclosed | None = None,
    *,
    shown: bool = True,
) -> Entry:
    """An entry from a stored event's columns (its state is the JSON ``domain.serialization``
    writes, whose ``data`` is in the API's shape), with its personal values ``disclosed``
    (domain.personal; placeholders where none are held). ``shown=False`` keeps the data as
    stored and hashed (commitments and all), for checking hashes."""
    try:
        document = orjson.loads(state)
        data = document["data"]
        if shown:
            data = disclose(data, disclosed, stream_id)
        type_name, stream_type = topics[topic]
        # Positional: a rebuild makes one Entry per event, and keywords cost a fifth more here.
        return Entry(
            position,
            stream_id,
            version,
            type_name,
            parse_instant(document["occurred_at"]),
            data,
            document["recorded_at"],
            document["recorded_by"],
            document["prev_hash"],
            document["hash"],
            False,  # retracted
            stream_type,
        )
    except (ValueError, KeyError, TypeError) as error:  # damaged storage: say which event
        reason = f"{type(error).__name__}: {error}"
        raise DamagedEvent(stream_id, version, position, reason) from error


def stream_id_text(originator_id: Any) -> str:
    """A stream id as text: SQLite keeps UUIDs as 32 hex digits, PostgreSQL as uuid."""
    text = str(originator_id)
    if len(text) == 32:
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return text


@dataclass(frozen=True)
class LogTable:
    """Where the log's table is, and the statements that read it.

    Plain data, so that another process can open the same table (:class:`OpenLog`).
    """

    postgres: bool
    name: str  # as statements name it: stored_events, or "schema"."pledger_events"
    topics: Topics
    # Keywords of sqlite3.connect() or psycopg.connect(); the password stays out of reprs.
    connect_args: Mapping[str, Any] = field(repr=False)
    vault: Vault | None = None  # where personal values are kept (domain.personal)

    @property
    def position(self) -> str:
        return "notification_id" if self.postgres else "rowid"

    def key(self, stream_id: str) -> str:
        """A stream id as the table keeps it (SQLite: the UUID's 32 hex digits)."""
        return stream_id if self.postgres else stream_id.replace("-", "")

    def streams_statement(self, count: int) -> str:
        """Every event of ``count`` streams, by primary key, with positions."""
        if self.postgres:
            return (
                "SELECT notification_id AS position, originator_id, originator_version, "
                f"topic, state FROM {self.name} WHERE originator_id = ANY(%s::uuid[]) "
                "ORDER BY originator_id, originator_version"
            )
        return (
            "SELECT rowid AS position, originator_id, originator_version, topic, state "
            f"FROM {self.name} WHERE originator_id IN ({', '.join('?' * count)}) "
            "ORDER BY originator_id, originator_version"
        )

    def streams_params(self, stream_ids: Sequence[str]) -> Sequence[Any]:
        """The parameters that name these streams in the two statements above."""
        keys = [self.key(sid) for sid in stream_ids]
        return (keys,) if self.postgres else keys

    def versions_statement(self, count: int) -> str:
        """The last version of each of ``count`` streams (from the primary key only)."""
        where = (
            "originator_id = ANY(%s::uuid[])"
            if self.postgres
            else f"originator_id IN ({', '.join('?' * count)})"
        )
        return (
            "SELECT originator_id, MAX(originator_version) AS version "
            f"FROM {self.name} WHERE {where} GROUP BY originator_id"
        )

    def range_statement(self, *, bounded: bool) -> str:
        """A page of the events of the streams in an id range, in (stream, version) order,
        recorded up to a position: a walk along the primary key from a (stream, version)."""
        mark, cast = ("%s", "::uuid") if self.postgres else ("?", "")
        below = f"AND originator_id < {mark}{cast} " if bounded else ""
        # PostgreSQL: the id as text, not a UUID object a row (psycopg's Python loader).
        stream_id = "originator_id::text" if self.postgres else "originator_id"
        return (
            f"SELECT {self.position}, {stream_id}, originator_version, topic, state "
            f"FROM {self.name} "
            f"WHERE (originator_id, originator_version) > ({mark}{cast}, {mark}) {below}"
            f"AND {self.position} <= {mark} "
            f"ORDER BY originator_id, originator_version LIMIT {mark}"
        )

    def hashes_statement(self) -> str:
        """A page of (position, stored state) in position order, between two positions; on
        SQLite, (position, stored hash): SQLite's JSON reader takes the hash out in C, without
        the Python objects of a whole decoded event (a fifth of the digest's reading)."""
        if self.postgres:
            column = "state"
            mark = "%s"
        else:
            # As text: a newer SQLite reads a BLOB argument as its binary JSONB format.
            column = "json_extract(CAST(state AS TEXT), '$.hash')"
            mark = "?"
        return (
            f"SELECT {self.position}, {column} FROM {self.name} "
            f"WHERE {self.position} > {mark} AND {self.position} <= {mark} "
            f"ORDER BY {self.position} LIMIT {mark}"
        )

    def lowest_key(self) -> str:
        """A key at or below every stream id (where the first id range starts)."""
        return "00000000-0000-0000-0000-000000000000" if self.postgres else ""

    def split_key(self, part: int, parts: int) -> str:
        """Where the ``part``-th of ``parts`` equal ranges of 128-bit stream ids starts."""
        value = f"{part * 2**128 // parts:032x}"
        return stream_id_text(value) if self.postgres else value


class OpenLog:
    """The log's table on a connection of this process's own (rows as tuples).

    The rebuild reads through it, in its worker processes and in the process that writes the
    views alike; every statement is a read.
    """

    def __init__(self, table: LogTable) -> None:
        self.table = table
        self._connection: Any
        if table.postgres:
            import psycopg

            self._connection = psycopg.connect(**table.connect_args, autocommit=True)
        else:
            self._connection = sqlite3.connect(**table.connect_args)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> OpenLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _rows(self, statement: str, params: Sequence[Any]) -> list[Any]:
        if self.table.postgres:
            # Results in binary: a bytea arrives as its bytes rather than as hex to unescape.
            rows: list[Any] = self._connection.execute(statement, params, binary=True).fetchall()
        else:
            rows = self._connection.execute(statement, params).fetchall()
        return rows

    def stream_pages(
        self, lower: str, upper: str | None, upto: int, limit: int
    ) -> Iterator[list[Entry]]:
        """The events recorded up to position ``upto`` of every stream whose id is in
        [lower, upper) (no upper bound: to the last), a page at a time, in (stream, version)
        order. A stream's events may continue on the next page. For the folds, which read
        the personal values of ``FOLDED_PERSONAL`` events only: those are disclosed; every
        other entry keeps its data as stored (``personal`` commitments in place of values,
        never read by a fold), which spares a rebuild a third of its decoding."""
        table = self.table
        statement = table.range_statement(bounded=upper is not None)
        shown = {
            topic for topic, (type_name, _) in table.topics.items() if type_name in FOLDED_PERSONAL
        }
        names: dict[Any, str] = {}  # decoded once per stream, and one string for all its entries
        after: tuple[Any, int] = (lower, 0)
        while True:
            bound = (upper,) if upper is not None else ()
            rows = self._rows(statement, (*after, *bound, upto, limit))
            if not rows:
                return
            page = []
            disclosed = self.disclosed(rows)
            for position, originator_id, version, topic, state in rows:
                stream_id = names.get(originator_id)
                if stream_id is None:
                    stream_id = names[originator_id] = stream_id_text(originator_id)
                page.append(
                    decode_entry(
                        table.topics,
                        position,
                        stream_id,
                        version,
                        topic,
                        state,
                        disclosed.get((stream_id, version)),
                        shown=topic in shown,
                    )
                )
            yield page
            last = rows[-1]
            after = (last[1], last[2])

    def disclosed(self, rows: Sequence[Any]) -> dict[tuple[str, int], Disclosed]:
        """The personal values the folds read (``FOLDED_PERSONAL``) of the events of ``rows``
        (position, stream id, version, topic, state), from the personal-data table."""
        vault = self.table.vault
        topics = self.table.topics
        pairs = [
            (stream_id_text(row[1]), row[2])
            for row in rows
            if topics.get(row[3], ("", ""))[0] in FOLDED_PERSONAL
            and b'"personal":' in bytes(row[4])
        ]
        if vault is None or not pairs:
            return {}
        found: dict[tuple[str, int], Disclosed] = {}
        for start in range(0, len(pairs), 400):
            chunk = pairs[start : start + 400]
            statement = vault.events_statement(len(chunk))
            found.update(decrypt_rows(self._rows(statement, vault.event_params(chunk))))
        return found

    def hash_pages(self, upto: int, limit: int) -> Iterator[list[tuple[int, str]]]:
        """The position and stored hash of every event up to position ``upto``, in position
        order, a page at a time."""
        statement = self.table.hashes_statement()
        loads = orjson.loads
        after = 0
        while True:
            rows = self._rows(statement, (after, upto, limit))
            if not rows:
                return
            after = rows[-1][0]
            if self.table.postgres:
                yield [(position, loads(state)["hash"]) for position, state in rows]
            else:
                yield rows
