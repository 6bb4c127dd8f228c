"""What a report checks before it states a digest (SPEC §5, issue 15 item 1).

A report counts the events of a few streams (the coalition's and its members'). Before it
vouches for them with a digest, every one of those events is read from the log as stored now
and checked:

* its hash, recomputed from its stored content (SPEC §5's formula);
* its chain: version N+1 follows version N and carries N's hash as ``prev_hash``;
* against the views: the stream's hash chain must still end, at the version the views' digest
  took in, in the hash the digest took in (``stream_heads``). A chain's last hash commits to
  every event before it, so this proves the counted events' hashes are the ones chained into
  the stated digest, and catches a rewrite that recomputed its hashes, a deletion, or an event
  recorded into a position the views had already passed.

Incremental. Recomputing a hash means parsing the event's JSON and serialising it again
(tens of µs), and reading a coalition's events back costs some ms: so a stream whose events
all checked out is remembered with the log's change marker (``LogChanges``: triggers on the
log's table count every UPDATE, DELETE or TRUNCATE; appends do not touch it). While the marker
and the stream's last version are as they were, nothing of the stream is read again; once
anything in the log was changed, every counted stream is read and checked again (an event
whose stored bytes are as they were when it checked out is not re-hashed). The heads are
compared every time. (Someone able to drop the triggers can hide an edit from this
in-process shortcut until the next process starts: that is what ``pledger verify`` and, for a
log rewritten wholesale, checkpoints kept outside are for.)
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson

from domain.errors import DamagedEvent, UnvouchedContent, UnvouchedEvent
from domain.hashing import GENESIS, event_hash, parse_instant
from domain.personal import CONTENT_ERASED
from projections.log import LogReader, entry_of
from projections.logtable import stream_id_text
from projections.store import LedgerView

__all__ = ["EventVouching", "LogChanges", "log_behind_views"]

REMEMBER_EVENTS = 500_000  # verified fingerprints kept (about 100 bytes each)
REMEMBER_STREAMS = 50_000  # streams whose stored rows last checked out
# pg_advisory_xact_lock key around creating the log's change counter (an arbitrary constant).
LOG_CHANGES_LOCK_KEY = 0x2E61_C0DE_4B1D_7A03


# (stream_id, version) -> (SHA-256 of topic and state, stored hash, stored prev_hash)
_Verified = dict[tuple[str, int], tuple[bytes, str, str]]


class EventVouching:
    """Checks the stored events of a few streams before a report vouches for them."""

    def __init__(self, view: LedgerView, log: LogReader) -> None:
        self.view = view
        self.log = log
        self._lock = threading.Lock()
        self._verified: _Verified = {}
        # stream -> (log change marker, {version: (position, stored hash)}) of a stream
        # whose every event checked out while the marker was that.
        self._streams: dict[str, tuple[int, dict[int, tuple[int, str]]]] = {}
        self.changes = LogChanges(log)

    def check(self, stream_ids: Sequence[str]) -> None:
        """Check every stored event of ``stream_ids`` (stream UUIDs as lowercase text).

        Returns nothing when all is well; raises ``UnvouchedContent`` (HTTP 409, CLI exit 1)
        naming every event at fault: content that no longer matches its hash (or no longer
        decodes), a broken chain link, a stream whose chain no longer ends in the hash the
        views' digest took in at that version, or an event at a position the views had
        already passed without taking it in.
        """
        wanted = list(dict.fromkeys(stream_ids))
        marker = self.changes.marker()  # before reading: a later change moves it on
        versions = self.log.last_versions(wanted)
        known: dict[str, dict[int, tuple[int, str]]] = {}
        with self._lock:
            for sid in wanted:
                kept = self._streams.get(sid)
                if kept and kept[0] == marker and max(kept[1], default=0) == versions.get(sid):
                    known[sid] = kept[1]
        rows = self._read([sid for sid in wanted if sid not in known])
        # The tracked position before the heads: the heads then cover every event up to it
        # (the views write both in one transaction), whatever the views take in meanwhile.
        seen = self.view.processed_position()
        heads = self.view.stream_heads(wanted)
        faults: list[UnvouchedEvent] = []
        for stream_id in wanted:
            stored_hashes = known.get(stream_id)
            if stored_hashes is None:
                found, stored_hashes = self._check_events(stream_id, rows.get(stream_id, []))
                faults.extend(found)
                if not found:
                    with self._lock:
                        if len(self._streams) >= REMEMBER_STREAMS:
                            self._streams.clear()
                        self._streams[stream_id] = (marker, stored_hashes)
            faults.extend(self._check_head(stream_id, stored_hashes, heads, seen))
        if faults:
            raise UnvouchedContent(faults)

    def _check_head(
        self,
        stream_id: str,
        stored_hashes: dict[int, tuple[int, str]],
        heads: dict[str, tuple[int, int, str]],
        seen: int,
    ) -> list[UnvouchedEvent]:
        """The stream's stored events (``{version: (position, hash)}``) against what the
        views took in: the hash at the head's version, and nothing newer at a position the
        views had already passed."""
        faults: list[UnvouchedEvent] = []
        head = heads.get(stream_id)
        taken = head[0] if head is not None else 0
        for version in sorted(stored_hashes, reverse=True):  # the newest first
            position = stored_hashes[version][0]
            if version <= taken:
                break
            if position <= seen:
                faults.append(
                    UnvouchedEvent(
                        position,
                        stream_id,
                        version,
                        f"recorded at a position the views had already passed ({seen}): "
                        "an earlier event there was removed",
                    )
                )
        if head is not None:
            version, position, digested = head
            found = stored_hashes.get(version)
            if found is None:
                faults.append(
                    UnvouchedEvent(
                        position,
                        stream_id,
                        version,
                        "the event the ledger digest took in is no longer in the log",
                    )
                )
            elif found[1] != digested or found[0] != position:
                faults.append(
                    UnvouchedEvent(
                        found[0],
                        stream_id,
                        version,
                        "the stored hash (or position) differs from the one the ledger digest "
                        f"took in at position {position}",
                    )
                )
        return faults

    def _check_events(
        self, stream_id: str, rows: list[tuple[int, int, str, bytes]]
    ) -> tuple[list[UnvouchedEvent], dict[int, tuple[int, str]]]:
        """Every event's content against its hash, and every chain link: the faults, and
        ``{version: (position, stored hash)}``."""
        faults: list[UnvouchedEvent] = []
        previous_version, previous_hash = 0, GENESIS
        stored_hashes: dict[int, tuple[int, str]] = {}
        erased: dict[
            int, int
        ] = {}  # format 1 events overwritten by an erasure: version -> position
        named: set[int] = set()  # the versions this stream's erasures name
        for position, version, topic, state in rows:
            if _ERASED_MARK in state:
                erased[version] = position
            if _ERASURE_TYPE in state:
                named.update(_erased_versions(stream_id, version, topic, state))
            stored_hash, prev_hash, problem = self._content(stream_id, version, topic, state)
            if problem is None and version != previous_version + 1:
                problem = f"version {version} follows version {previous_version}"
            if problem is None and prev_hash != previous_hash:
                problem = f"prev_hash does not match the hash of version {previous_version}"
            if problem is not None:
                faults.append(UnvouchedEvent(position, stream_id, version, problem))
            stored_hashes[version] = (position, stored_hash)
            previous_version, previous_hash = version, stored_hash
        for version, position in sorted(erased.items()):
            if version not in named:
                problem = "marked as erased, but no personal_data_erased event names it"
                faults.append(UnvouchedEvent(position, stream_id, version, problem))
        return faults, stored_hashes

    def _content(
        self, stream_id: str, version: int, topic: str, state: bytes
    ) -> tuple[str, str, str | None]:
        """``(stored hash, stored prev_hash, problem or None)`` of one stored event; its hash
        is recomputed only when its stored bytes changed since they last checked out."""
        fingerprint = hashlib.sha256(topic.encode() + b"\0" + state).digest()
        key = (stream_id, version)
        with self._lock:
            known = self._verified.get(key)
        if known is not None and known[0] == fingerprint:
            return known[1], known[2], None
        if _ERASED_MARK in state:
            # A format 1 event whose personal values an erasure overwrote (issue 16): its
            # stored hash still chains, its content can no longer be checked against it.
            document = orjson.loads(state)
            return document["hash"], document["prev_hash"], None
        try:
            entry = entry_of(0, stream_id, version, topic, state, shown=False)
            recomputed = event_hash(
                stream_id=UUID(stream_id),
                version=version,
                type=entry.type,
                occurred_at=entry.occurred_at,
                recorded_at=parse_instant(entry.recorded_at),
                recorded_by=entry.recorded_by,
                data=entry.data,
                prev_hash=entry.prev_hash,
            )
        except (DamagedEvent, ValueError, TypeError) as error:
            return "", "", f"stored content no longer decodes: {error}"
        if recomputed != entry.hash:
            return entry.hash, entry.prev_hash, "stored content no longer matches its hash"
        with self._lock:
            if len(self._verified) >= REMEMBER_EVENTS:
                self._verified.clear()  # start over rather than keep an LRU's bookkeeping
            self._verified[key] = (fingerprint, entry.hash, entry.prev_hash)
        return entry.hash, entry.prev_hash, None

    def _read(self, stream_ids: list[str]) -> dict[str, list[tuple[int, int, str, bytes]]]:
        """Every stored event of the streams, read now (never from a cache), in version
        order: ``{stream_id: [(position, version, topic, state)]}``."""
        found: dict[str, list[tuple[int, int, str, bytes]]] = {}
        table = self.log.table
        datastore: Any = self.log.recorder.datastore  # type: ignore[attr-defined]
        for start in range(0, len(stream_ids), 500):
            chunk = stream_ids[start : start + 500]
            with datastore.transaction(commit=False) as c:
                c.execute(table.streams_statement(len(chunk)), table.streams_params(chunk))
                rows = c.fetchall()
            names: dict[Any, list[tuple[int, int, str, bytes]]] = {}
            for row in rows:
                key = row["originator_id"]
                events = names.get(key)
                if events is None:
                    events = names[key] = found.setdefault(stream_id_text(key), [])
                state = row["state"]
                events.append(
                    (
                        row["position"],
                        row["originator_version"],
                        row["topic"],
                        state if isinstance(state, bytes) else bytes(state),
                    )
                )
        return found


_ERASED_MARK = f'"{CONTENT_ERASED}":true'.encode()
_ERASURE_TYPE = b'"reason":'


def _erased_versions(stream_id: str, version: int, topic: str, state: bytes) -> set[int]:
    """The versions of ``stream_id`` a ``personal_data_erased`` event names (none for any
    other event)."""
    try:
        entry = entry_of(0, stream_id, version, topic, state, shown=False)
    except DamagedEvent:
        return set()
    if entry.type != "personal_data_erased":
        return set()
    return {f["version"] for f in entry.data["fields"] if f["stream_id"] == stream_id}


class LogChanges:
    """A counter of changes made to the log's stored events after they were recorded: a
    trigger on the log's table adds a row to ``pledger_log_changes`` for every UPDATE, DELETE
    (and, on PostgreSQL, TRUNCATE) statement. The ledger itself only ever appends, so the
    counter moves only when someone changed the log behind it."""

    def __init__(self, log: LogReader) -> None:
        self.log = log
        self._installed = False
        datastore: Any = log.recorder.datastore  # type: ignore[attr-defined]
        self._datastore = datastore
        if log.table.postgres:
            self.table = f'"{datastore.schema}".pledger_log_changes'
        else:
            self.table = "pledger_log_changes"

    def _install(self) -> None:
        """Create the counter and its triggers unless they are there (once a process)."""
        log_table = self.log.table.name
        with self._datastore.transaction(commit=True) as c:
            if self.log.table.postgres:
                schema = self._datastore.schema
                function = f'"{schema}".pledger_log_changed'
                c.execute("SELECT pg_advisory_xact_lock(%s)", (LOG_CHANGES_LOCK_KEY,))
                c.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.table} (id BIGSERIAL PRIMARY KEY, "
                    "changed_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                c.execute(
                    f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger "
                    f"LANGUAGE plpgsql AS $$ BEGIN INSERT INTO {self.table} DEFAULT VALUES; "
                    "RETURN NULL; END $$"
                )
                c.execute(
                    f"CREATE OR REPLACE TRIGGER pledger_log_changed AFTER UPDATE OR DELETE "
                    f"OR TRUNCATE ON {log_table} FOR EACH STATEMENT EXECUTE FUNCTION "
                    f"{function}()"
                )
            else:
                c.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.table} (id INTEGER PRIMARY KEY "
                    "AUTOINCREMENT, changed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
                )
                for change in ("UPDATE", "DELETE"):
                    c.execute(
                        f"CREATE TRIGGER IF NOT EXISTS pledger_log_{change.lower()} AFTER "
                        f"{change} ON {log_table} BEGIN INSERT INTO {self.table} (changed_at) "
                        "VALUES (CURRENT_TIMESTAMP); END"
                    )
        self._installed = True

    def marker(self) -> int:
        """How many changes the log's stored events have had since the triggers were made."""
        if not self._installed:
            self._install()
        with self._datastore.transaction(commit=False) as c:
            c.execute(f"SELECT COALESCE(MAX(id), 0) AS n FROM {self.table}")
            row = c.fetchone()
        return int(row["n"])


def log_behind_views(
    view: LedgerView, log: LogReader, *, views_position: int, log_position: int
) -> list[str]:
    """What a cheap look (two indexed reads) finds wrong between the log and the views, for
    ``/healthz`` (issue 15 item 5): the log ending before the position the views took in
    (events removed), or the position of the views' last event no longer holding the event
    they took in there (rewritten, or reused after a deletion). Empty when they agree; the
    whole comparison is ``pledger verify``'s. ``views_position``: the views' tracked position,
    read before ``log_position``, the log's last position (the views never pass the log, so
    read in that order a log behind the views is no race)."""
    found: list[str] = []
    tracked = views_position
    if log_position < tracked:
        found.append(
            f"the log ends at position {log_position}, but the views took in events up to "
            f"position {tracked}: events were removed"
        )
    head_position, _, _ = view.chain_head()
    rows = view.select(
        "SELECT stream_id, version, hash FROM {p}stream_heads WHERE position = ?",
        (head_position,),
    )
    if not head_position or not rows:
        return found
    expected = (rows[0]["stream_id"], int(rows[0]["version"]), rows[0]["hash"])
    stored = log.recorder.select_notifications(start=head_position, limit=1)
    if not stored or stored[0].id != head_position:
        found.append(f"the event the views took in at position {head_position} is gone")
        return found
    event = stored[0]
    try:
        stored_hash = orjson.loads(event.state).get("hash")
    except orjson.JSONDecodeError:
        stored_hash = None
    if (stream_id_text(event.originator_id), event.originator_version, stored_hash) != expected:
        found.append(
            f"position {head_position} no longer holds the event the views took in there "
            f"(stream {expected[0]} version {expected[1]}): rewritten, or reused after a deletion"
        )
    return found
