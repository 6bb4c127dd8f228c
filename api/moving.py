"""Moving a ledger to another store, and backing one up (issue 17 items 4 and 5).

``pledger copy --to`` copies a ledger's log, row for row, into an empty store of either kind:
every event keeps its position, stream id, version, topic and stored state (whose JSON holds the
event's hash and the previous hash, SPEC §5), so the copy's ledger digest is the source's. The
tables beside the log (tokens, Idempotency-Keys, sessions, shared state) go with it, in the same
transaction as the events: a failed copy leaves the target as empty as it was.

``pledger backup`` copies a SQLite ledger with SQLite's online backup API
(``sqlite3.Connection.backup``), which gives a consistent snapshot of the database while
servers keep writing to it. PostgreSQL has ``pg_dump`` for that (see README).

Partners' snapshots (issue 17 item 6: each holds a partner's name and contacts in clear) go
with neither: a copy does not copy them, and a backup deletes them from its file before it is
renamed into place (with ``secure_delete``, so that their bytes are zeros), so that a backup
keeps personal values only encrypted under their subjects' keys, which an erasure destroys.
They are retaken on the next write to each partner (``domain.application``).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from api.recorders import SQLITE_SNAPSHOTS, LedgerPostgresRecorder, LedgerSQLiteRecorder
from domain.application import Partnerships

__all__ = ["PAGE_SIZE", "TargetNotEmpty", "backup_sqlite", "copy_ledger"]

PAGE_SIZE = 5000  # events read from the source at a time
BACKUP_PAGES = 1024  # SQLite pages copied between two looks at other writers


class TargetNotEmpty(Exception):
    """The target already holds events or tokens: a copy only goes into an empty ledger."""


def copy_ledger(
    source: Partnerships, target: Partnerships, *, advance: Callable[[int], None] = lambda _: None
) -> int:
    """Copy every event of ``source`` (up to its last position when the copy starts) and the
    tables beside its log into ``target``, in one transaction of the target; returns how many
    events were copied. Partners' snapshots are not copied: the target retakes them.

    The tables beside the log are read first: an Idempotency-Key's row is recorded with its
    events, so every row read then names an event the copy includes. Raises
    :class:`TargetNotEmpty` (nothing written) when the target has events or tokens.
    """
    api_rows = source.recorder.api_tables()  # type: ignore[attr-defined]
    upto = source.recorder.max_notification_id() or 0
    recorder: Any = target.recorder
    copied = 0
    with recorder.datastore.transaction(commit=True) as c:
        if (target.recorder.max_notification_id() or 0) or recorder.count_api_rows(c):
            msg = "the target ledger is not empty: a copy only goes into a new, empty ledger"
            raise TargetNotEmpty(msg)
        after = 0
        while after < upto:
            page = source.recorder.select_notifications(
                after, PAGE_SIZE, stop=upto, inclusive_of_start=False
            )
            if not page:
                break
            _insert_events(recorder, c, page)
            copied += len(page)
            after = page[-1].id
            advance(len(page))
        if isinstance(recorder, LedgerPostgresRecorder) and upto:
            # Positions were given, not drawn: the next event must come after the last copied.
            table = f"{recorder.datastore.schema}.{recorder.events_table_name}"
            c.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)", (table, upto)
            )
        recorder.insert_api_tables(c, api_rows)
    return copied


def _insert_events(recorder: Any, c: Any, page: Sequence[Notification]) -> None:
    """Insert a page of the source's events at the same positions."""
    if isinstance(recorder, LedgerSQLiteRecorder):
        # The library's SQLite log numbers its events by rowid.
        c.executemany(
            f"INSERT INTO {recorder.events_table_name} "
            "(rowid, originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?, ?)",
            [(n.id, _hex(n.originator_id), n.originator_version, n.topic, n.state) for n in page],
        )
        return
    table = f"{recorder.datastore.schema}.{recorder.events_table_name}"
    columns = "notification_id, originator_id, originator_version, topic, state"
    with c.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", recorder.datastore.originator_id_type, "int8", "text", "bytea"])
        for n in page:
            copy.write_row((n.id, n.originator_id, n.originator_version, n.topic, n.state))


def _hex(stream_id: UUID | str) -> str:
    """A stream id as the library's SQLite log keeps it: 32 hex digits."""
    return stream_id.hex if isinstance(stream_id, UUID) else UUID(stream_id).hex


def _drop_snapshots(copy: sqlite3.Connection) -> None:
    """Delete the partners' snapshots from a backup, their bytes overwritten with zeros."""
    tables = copy.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (SQLITE_SNAPSHOTS,)
    ).fetchall()
    if tables:
        copy.execute("PRAGMA secure_delete = ON")
        copy.execute(f"DELETE FROM {SQLITE_SNAPSHOTS}")
        copy.commit()


def backup_sqlite(
    source: Path, target: Path, *, advance: Callable[[int, int], None] = lambda _d, _t: None
) -> None:
    """Copy the SQLite database ``source`` to ``target`` (which must not exist) with SQLite's
    online backup API: a consistent snapshot even while other processes write. Written to a
    temporary file beside ``target`` and renamed into place once complete. ``advance(done,
    total)`` is told the pages copied so far. Raises FileExistsError when ``target`` exists."""
    if target.exists():
        raise FileExistsError(f"{target} already exists; give a new file")
    part = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
        dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
    )
    part.close()
    try:
        with (
            closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as origin,
            closing(sqlite3.connect(part.name)) as copy,
        ):
            origin.backup(
                copy,
                pages=BACKUP_PAGES,
                progress=lambda _status, left, total: advance(total - left, total),
            )
            _drop_snapshots(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        os.replace(part.name, target)
    except BaseException:
        Path(part.name).unlink(missing_ok=True)
        raise
