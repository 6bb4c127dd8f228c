"""The materialised views: tables kept by the ledger projection, with their tracking record.

Every write to these tables happens in the same transaction as the tracking record of the
last event it reflects (eventsourcing's tracking recorders), so a redelivered event changes
nothing and a restart resumes where it stopped.

The event log itself answers questions about one stream (a partner's timeline, its state at a
past moment): its primary key already finds a stream's events. The views keep what questions
over many partners need (prefixed ``ledger_views_`` on PostgreSQL, where they share the log's
database; unprefixed in the SQLite file beside the log):

    partners     each partner's current snapshot (the fold of its counting entries), with the
                 columns lists and filters use, and what the snapshot is valid for: the latest
                 occurred_at it reflects and the position of the stream's last event
    commitments  every commitment's current state, for accountability and the agenda in SQL
    commitment_totals  how many commitments are in each (side, coalition, closed, on time)
                 group: the closed part of the fulfilment figures without a scan
    coalitions   each coalition's name, formation and last position
    digests      the ledger digest every 256 events, and the chain head after the last one
    stream_heads each stream's last event the digest took in: its version, position and hash
                 (a stream's hash chain ends there, so a report checks its events against it)

A snapshot answers a question at (as_of, position) exactly when as_of is at or after its latest
occurred_at and position at or after its stream's last event; otherwise the query folds the
stream from the log (see ``projections.queries``).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar, TypeVar

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.sql import SQL

from domain.chained import ChainedAggregate
from domain.dates import DEFAULT_ZONE, zone_name
from domain.hashing import GENESIS, digest_step, format_instant
from domain.merkle import MerkleAppender, NodeLookup, needed_nodes, tree_head
from projections.folds import Entry, PartnerSnapshot, evolve_partner, fold_partner
from projections.follow import VIEWS_CHANNEL
from projections.log import LogReader, entry_of_event
from projections.pgschema import SchemaOnce, table_exists
from projections.rebuild import LogFold
from projections.rows import (
    CHECKPOINT_EVERY,
    DigestChain,
    FoldedPartner,
    Totals,
    column_text,
    commitment_rows,
    count_commitments,
    fold_stream,
    partner_row,
    totals_key,
)
from projections.snapshots import snapshot_from_json

__all__ = [
    "CHECKPOINT_EVERY",
    "LedgerView",
    "LogRewritten",
    "PostgresLedgerView",
    "SQLiteLedgerView",
]


class LogRewritten(Exception):
    """The next event of a stream is not the one after the last the views took in: an event
    was removed from the log (its position then reused) or rewritten after the views read it.
    The views stop rather than skip it silently (issue 15 item 5); ``pledger verify`` names
    what changed, ``pledger rebuild`` makes the views again from the log as it now is."""


T = TypeVar("T")
SNAPSHOT_CACHE_SIZE = 5000
REBUILD_CACHE_KIB = 64 * 1024  # SQLite's page cache while a rebuild writes (default: 2 MiB)
LOG_TABLE_POSTGRES = "pledger_events"  # eventsourcing names it after the application
APPLICATION_NAME = "pledger"
# pg_advisory_xact_lock key every transaction writing the views takes (see _lock_views).
VIEWS_LOCK_KEY = 0x5A3C_91E2_7B44_0D19

_TABLES = [
    """CREATE TABLE IF NOT EXISTS {p}partners (
        partner_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL,
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
        position BIGINT NOT NULL,
        snapshot TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {p}partners_name ON {p}partners (name_key, name, partner_id)",
    # What a reference needs to know is which snapshots do not answer there (usually none):
    "CREATE INDEX IF NOT EXISTS {p}partners_latest ON {p}partners (latest_occurred_at)",
    "CREATE INDEX IF NOT EXISTS {p}partners_position ON {p}partners (position)",
    "CREATE INDEX IF NOT EXISTS {p}partners_registered ON {p}partners (registered_pos)",
    """CREATE TABLE IF NOT EXISTS {p}commitments (
        partner_id TEXT NOT NULL,
        commitment_id TEXT NOT NULL,
        owed_by TEXT NOT NULL,
        coalition_id TEXT,
        description TEXT NOT NULL,
        made_at TEXT NOT NULL,
        due_on TEXT NOT NULL,
        closed TEXT,
        on_time INTEGER,
        after_due INTEGER NOT NULL,
        PRIMARY KEY (partner_id, commitment_id))""",
    "CREATE INDEX IF NOT EXISTS {p}commitments_open ON {p}commitments (closed, due_on)",
    """CREATE TABLE IF NOT EXISTS {p}commitment_totals (
        owed_by TEXT NOT NULL,
        coalition_id TEXT NOT NULL,
        closed TEXT NOT NULL,
        on_time INTEGER NOT NULL,
        made BIGINT NOT NULL,
        after_due BIGINT NOT NULL,
        PRIMARY KEY (owed_by, coalition_id, closed, on_time))""",
    """CREATE TABLE IF NOT EXISTS {p}coalitions (
        coalition_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        formed_at TEXT NOT NULL,
        formed_pos BIGINT NOT NULL,
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
    """CREATE TABLE IF NOT EXISTS {p}stream_heads (
        stream_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        position BIGINT NOT NULL,
        hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {p}stream_heads_position ON {p}stream_heads (position)",
    # The Merkle tree's perfect subtrees (RFC 9162 §2.1, domain.merkle): level 0 holds each
    # event's leaf hash, with its position; level L index I covers leaves I*2^L .. (I+1)*2^L-1.
    """CREATE TABLE IF NOT EXISTS {p}merkle_nodes (
        level INTEGER NOT NULL,
        idx BIGINT NOT NULL,
        hash TEXT NOT NULL,
        position BIGINT,
        PRIMARY KEY (level, idx))""",
    "CREATE INDEX IF NOT EXISTS {p}merkle_nodes_position ON {p}merkle_nodes (position)",
    # Signed checkpoints (projections.checkpoints): statements made, which a rebuild keeps.
    """CREATE TABLE IF NOT EXISTS {p}signed_checkpoints (
        position BIGINT NOT NULL,
        tree_size BIGINT NOT NULL,
        digest TEXT NOT NULL,
        tree_head TEXT NOT NULL,
        time TEXT NOT NULL,
        signature TEXT NOT NULL,
        PRIMARY KEY (time, position))""",
    # The time zone the views counted calendar days in (on time or late, renegotiated after
    # the due date): views kept in another zone are rebuilt (projections.runner).
    """CREATE TABLE IF NOT EXISTS {p}view_zone (
        id INTEGER PRIMARY KEY,
        zone TEXT NOT NULL)""",
]
VIEW_TABLES = (
    "partners",
    "commitments",
    "commitment_totals",
    "coalitions",
    "digests",
    "chain_head",
    "stream_heads",
    "merkle_nodes",
)
_CHANGES_COMMITMENTS = {
    "partner_registered",
    "personal_data_erased",  # descriptions now read as placeholders
    "commitment_made",
    "commitment_fulfilled",
    "commitment_renegotiated",
    "commitment_cancelled",
    "entry_retracted",
}


class _Fold:
    """Partners being folded while a page (or a whole rebuild) is applied."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self.snaps: dict[str, PartnerSnapshot] = {}
        self.latest: dict[str, datetime] = {}
        self.registered_pos: dict[str, int] = {}
        self.refold: set[str] = set()
        self.touched: set[str] = set()
        self.commitments_changed: set[str] = set()

    def apply(self, entry: Entry) -> None:
        sid = entry.stream_id
        self.touched.add(sid)
        if entry.type in _CHANGES_COMMITMENTS:
            self.commitments_changed.add(sid)
        snap = self.snaps.get(sid)
        if entry.type == "partner_registered" and snap is None:
            snap = fold_partner(sid, [entry], self.zone)
            self.snaps[sid] = snap
            self.latest[sid] = entry.occurred_at
            self.registered_pos[sid] = entry.position
            return
        if snap is None or entry.type in _REFOLDS or entry.occurred_at < self.latest[sid]:
            # Out of world order, a correction, or an erasure (whose earlier entries now read
            # as placeholders): fold the stream again.
            self.refold.add(sid)
        elif sid not in self.refold:
            evolve_partner(snap, entry)
        if snap is not None:
            self.latest[sid] = max(self.latest[sid], entry.occurred_at)
            snap.version = entry.version
            snap.position = entry.position


_REFOLDS = frozenset({"entry_retracted", "personal_data_erased"})


class LedgerView(TrackingRecorder):
    """Dialect-neutral logic of the views; the two subclasses below bind it to a store."""

    prefix: ClassVar[str] = ""
    datastore: Any
    log: LogReader | None = None
    zone: tzinfo = UTC  # the ledger's time zone (set by whoever opens the views)

    def _q(self, statement: str) -> str:
        return statement.replace("{p}", self.prefix)

    def _insert_tracking(self, c: Any, tracking: Tracking) -> None:  # provided by the recorder
        raise NotImplementedError

    def _select_tracking_statement(self) -> str:
        raise NotImplementedError

    def _delete_tracking_statement(self) -> str:
        raise NotImplementedError

    # ---- writing ------------------------------------------------------------------------

    def processed_position(self) -> int:
        return self.max_tracking_id(APPLICATION_NAME) or 0

    def process(self, items: Sequence[tuple[ChainedAggregate.Event, int]]) -> int:
        """Reflect typed events (with their positions, in order) and track the last."""
        return self.process_entries([entry_of_event(event, position) for event, position in items])

    def process_entries(self, entries: Sequence[Entry], *, following: bool = False) -> int:
        """Reflect entries (in position order) and track the last, in one transaction.

        Entries at or below the tracked position are skipped, so redelivery changes nothing.
        With ``following`` (a writer's own events, consecutive, taken from memory), they are
        taken only when the views stand right before the first of them, read in the same
        transaction; otherwise nothing changes. Returns how many were applied.
        """
        if not entries:
            return 0
        fold = _Fold(self.zone)
        try:
            with self.datastore.transaction(commit=True) as c:
                self._lock_views(c)
                done = self._tracked(c)
                if following and done != entries[0].position - 1:
                    return 0  # another process wrote in between, or took them
                fresh = [e for e in entries if e.position > done]
                if fresh and self._skips_after(done, fresh[0].position):
                    # The views went back (a rebuild started over) after the page was read.
                    assert self.log is not None
                    fresh = self.log.page(done, len(entries))
                if not fresh:
                    return 0
                # First, as the tracked position was read: a page another processor commits
                # meanwhile is refused by the tracking update below, not taken for a rewrite.
                self._check_follows(c, fresh)
                partner_ids = sorted({e.stream_id for e in fresh if e.stream_type == "partner"})
                for partner_id, snap, latest, registered_pos in self._load_snapshots(
                    c, partner_ids
                ):
                    fold.snaps[partner_id] = snap
                    fold.latest[partner_id] = latest
                    fold.registered_pos[partner_id] = registered_pos
                self._apply_all(c, fold, fresh)
                self._finish(c, fold, fresh[-1].position)
                self._extend_chain(c, fresh)
                self._advance_tracking(c, done, fresh[-1].position)
        except BaseException:
            for partner_id in fold.snaps:  # folded in place: forget what did not commit
                self._cache.pop(partner_id, None)
            raise
        for partner_id in fold.touched:
            self._remember(partner_id, fold.snaps[partner_id])
        return len(fresh)

    @property
    def _cache(self) -> OrderedDict[str, PartnerSnapshot]:
        """Snapshots this process last wrote, so the next page needs not decode them again;
        used only while the stored row still has the same position (no other writer since)."""
        cache: OrderedDict[str, PartnerSnapshot] | None = self.__dict__.get("_snapshot_cache")
        if cache is None:
            cache = self.__dict__["_snapshot_cache"] = OrderedDict()
        return cache

    def _remember(self, partner_id: str, snap: PartnerSnapshot) -> None:
        self._cache[partner_id] = snap
        self._cache.move_to_end(partner_id)
        while len(self._cache) > SNAPSHOT_CACHE_SIZE:
            self._cache.popitem(last=False)

    def rebuild(self, fold: LogFold, *, advance: Callable[[int], None] = lambda _: None) -> int:
        """Forget every view and write them again from ``fold`` (the whole log folded again,
        see ``projections.rebuild``), in one transaction; returns how many events it folded."""
        with self.datastore.transaction(commit=True) as c, self._rewriting(c):
            self._lock_views(c)
            for table in VIEW_TABLES:
                c.execute(self._q(f"DELETE FROM {{p}}{table}"))
            c.execute(self._q(self._delete_tracking_statement()), (APPLICATION_NAME,))
            self._record_zone(c)
            totals: Totals = Counter()
            events = 0
            for rows in fold:
                self._insert(c, "partners", rows.partners)
                self._insert(c, "commitments", rows.commitments)
                self._insert(c, "coalitions", rows.coalitions)
                self._insert(c, "stream_heads", rows.heads)
                self._insert(c, "merkle_nodes", rows.tree)
                totals.update(rows.totals)
                events += rows.events
                advance(rows.events)
            chain = fold.chain
            assert events == chain.events, "the folds and the digest read the same events"
            if chain.events:
                self._add_totals(c, totals)
                self._write_chain(c, chain)
                self._insert_tracking(c, Tracking(APPLICATION_NAME, chain.position))
                self._announce(c, chain.position)
        return chain.events

    @contextmanager
    def _rewriting(self, c: Any) -> Iterator[None]:  # noqa: ARG002 - the SQLite views use it
        """Around a rebuild's transaction, which writes every table anew."""
        yield

    def _apply_all(self, c: Any, fold: _Fold, entries: Iterable[Entry]) -> None:
        for entry in entries:
            if entry.stream_type == "partner":
                fold.apply(entry)
            elif entry.type == "coalition_formed":
                c.execute(
                    self._q(
                        "INSERT INTO {p}coalitions "
                        "(coalition_id, name, formed_at, formed_pos, version, position) "
                        "VALUES (?, ?, ?, ?, ?, ?)"
                    ),
                    (
                        entry.stream_id,
                        column_text(entry.data["name"]),
                        format_instant(entry.occurred_at),
                        entry.position,
                        entry.version,
                        entry.position,
                    ),
                )
            else:
                c.execute(
                    self._q(
                        "UPDATE {p}coalitions SET version = ?, position = ? WHERE coalition_id = ?"
                    ),
                    (entry.version, entry.position, entry.stream_id),
                )

    def _finish(self, c: Any, fold: _Fold, upto: int) -> None:
        """Refold what needs it from the log, then write every touched partner's rows."""
        if fold.refold:
            assert self.log is not None, "a view that refolds needs the log"
            streams = self.log.streams(sorted(fold.refold))
            for partner_id, entries in streams.items():
                folded = fold_stream(partner_id, entries, upto, self.zone)
                fold.snaps[partner_id] = folded.snap
                fold.latest[partner_id] = folded.latest
                fold.registered_pos[partner_id] = folded.registered_pos
        touched = sorted(fold.touched)
        if not touched:
            return
        rewrite = sorted(fold.commitments_changed | fold.refold)
        rows = []
        commitments = []
        for partner_id in touched:
            folded = FoldedPartner(
                fold.snaps[partner_id], fold.latest[partner_id], fold.registered_pos[partner_id]
            )
            rows.append(partner_row(partner_id, folded))
            if partner_id in fold.commitments_changed or partner_id in fold.refold:
                commitments.extend(commitment_rows(partner_id, folded.snap))
        for start in range(0, len(touched), 500):
            chunk = touched[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            c.execute(self._q(f"DELETE FROM {{p}}partners WHERE partner_id IN ({marks})"), chunk)
        totals: Totals = Counter()
        for start in range(0, len(rewrite), 500):
            chunk = rewrite[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            c.execute(
                self._q(
                    "SELECT owed_by, coalition_id, closed, on_time, after_due "
                    f"FROM {{p}}commitments WHERE partner_id IN ({marks})"
                ),
                chunk,
            )
            for row in c.fetchall():
                key = totals_key(row["owed_by"], row["coalition_id"], row["closed"], row["on_time"])
                totals[(*key, "made")] -= 1
                totals[(*key, "after_due")] -= int(row["after_due"])
            c.execute(self._q(f"DELETE FROM {{p}}commitments WHERE partner_id IN ({marks})"), chunk)
        self._insert(c, "partners", rows)
        self._insert(c, "commitments", commitments)
        count_commitments(totals, commitments)
        self._add_totals(c, totals)

    def _insert(self, c: Any, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """Rows into one of the views' tables (values for every column, in table order)."""
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            c.executemany(self._q(f"INSERT INTO {{p}}{table} VALUES ({marks})"), rows)

    def _add_totals(self, c: Any, totals: Counter[tuple[str, str, str, int, str]]) -> None:
        """Keep ``commitment_totals`` equal to a GROUP BY over ``commitments``."""
        keys = sorted({key[:4] for key in totals})
        if not keys:
            return
        c.executemany(
            self._q(
                "INSERT INTO {p}commitment_totals "
                "(owed_by, coalition_id, closed, on_time, made, after_due) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owed_by, coalition_id, closed, on_time) "
                "DO UPDATE SET made = {p}commitment_totals.made + excluded.made, "
                "after_due = {p}commitment_totals.after_due + excluded.after_due"
            ),
            [(*key, totals[(*key, "made")], totals[(*key, "after_due")]) for key in keys],
        )
        c.execute(self._q("DELETE FROM {p}commitment_totals WHERE made = 0"))

    def _record_zone(self, c: Any) -> None:
        c.execute(
            self._q(
                "INSERT INTO {p}view_zone (id, zone) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET zone = excluded.zone"
            ),
            (zone_name(self.zone),),
        )

    def record_zone(self) -> None:
        """Note that the views count days in their zone (for views with nothing in them yet;
        a rebuild notes it itself)."""
        with self.datastore.transaction(commit=True) as c:
            self._record_zone(c)

    def built_zone(self) -> str:
        """The time zone the views counted calendar days in; views kept before the zone was
        recorded counted UTC days."""
        rows = self.select("SELECT zone FROM {p}view_zone WHERE id = 1")
        return str(rows[0]["zone"]) if rows else DEFAULT_ZONE

    def _load_snapshots(
        self, c: Any, partner_ids: Sequence[str]
    ) -> Iterable[tuple[str, PartnerSnapshot, datetime, int]]:
        for start in range(0, len(partner_ids), 500):
            chunk = list(partner_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            c.execute(
                self._q(
                    "SELECT partner_id, position, latest_occurred_at, registered_pos "
                    f"FROM {{p}}partners WHERE partner_id IN ({marks})"
                ),
                chunk,
            )
            rows = c.fetchall()
            cached = {
                row["partner_id"]: snap
                for row in rows
                if (snap := self._cache.get(row["partner_id"])) is not None
                and snap.position == row["position"]
            }
            missing = [row["partner_id"] for row in rows if row["partner_id"] not in cached]
            if missing:
                c.execute(
                    self._q(
                        "SELECT partner_id, snapshot FROM {p}partners "
                        f"WHERE partner_id IN ({', '.join('?' * len(missing))})"
                    ),
                    missing,
                )
                for row in c.fetchall():
                    cached[row["partner_id"]] = snapshot_from_json(
                        row["partner_id"], row["snapshot"], self.zone
                    )
            for row in rows:
                yield (
                    row["partner_id"],
                    cached[row["partner_id"]],
                    datetime.fromisoformat(row["latest_occurred_at"]),
                    row["registered_pos"],
                )

    def _lock_views(self, c: Any) -> None:
        """Make every other transaction that writes the views wait until this one ends (on
        SQLite its own write lock already does)."""

    def _advance_tracking(self, c: Any, read: int, position: int) -> None:  # noqa: ARG002
        """Move the tracked position from ``read`` (as this transaction read it) to
        ``position``; raise IntegrityError when another transaction moved it meanwhile."""
        self._insert_tracking(c, Tracking(APPLICATION_NAME, position))

    def _announce(self, c: Any, position: int) -> None:
        """Tell other processes, once this transaction commits, that the views reached
        ``position`` (PostgreSQL: NOTIFY, see ``projections.follow``; SQLite has no channel)."""

    def _skips_after(self, done: int, first: int) -> bool:
        """Whether the log holds an event after ``done`` and before ``first``."""
        if first == done + 1 or self.log is None:
            return False
        following = self.log.page(done, 1)
        return bool(following) and following[0].position < first

    def _tracked(self, c: Any) -> int:
        c.execute(self._q(self._select_tracking_statement()), (APPLICATION_NAME,))
        row = c.fetchone()
        return int(row["n"] or 0) if row else 0

    def _extend_chain(self, c: Any, entries: Sequence[Entry]) -> None:
        c.execute(self._q("SELECT position, digest, events FROM {p}chain_head WHERE id = 1"))
        row = c.fetchone()
        chain = DigestChain(row["digest"], row["events"], row["position"]) if row else DigestChain()
        chain.frontier = self._frontier(c, chain)
        chain.extend((entry.position, entry.hash) for entry in entries)
        self._write_chain(c, chain)
        heads = {e.stream_id: (e.stream_id, e.version, e.position, e.hash) for e in entries}
        c.executemany(
            self._q(
                "INSERT INTO {p}stream_heads (stream_id, version, position, hash) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (stream_id) DO UPDATE SET "
                "version = excluded.version, position = excluded.position, hash = excluded.hash"
            ),
            list(heads.values()),
        )

    def _check_follows(self, c: Any, entries: Sequence[Entry]) -> None:
        """Raise ``LogRewritten`` unless each entry is the version after the last one the views
        took in of its stream (streams they have no head for, as in views made before heads
        were kept, are not checked)."""
        streams = sorted({e.stream_id for e in entries})
        last: dict[str, int] = {}
        for start in range(0, len(streams), 500):
            chunk = streams[start : start + 500]
            c.execute(
                self._q(
                    "SELECT stream_id, version FROM {p}stream_heads "
                    f"WHERE stream_id IN ({', '.join('?' * len(chunk))})"
                ),
                chunk,
            )
            last.update({row["stream_id"]: int(row["version"]) for row in c.fetchall()})
        for entry in entries:
            before = last.get(entry.stream_id)
            if before is not None and entry.version != before + 1:
                msg = (
                    f"position {entry.position} holds stream {entry.stream_id} version "
                    f"{entry.version}, but the views last took in version {before}: the log "
                    "was rewritten behind the ledger (run `pledger verify`)"
                )
                raise LogRewritten(msg)
            last[entry.stream_id] = entry.version

    def _frontier(self, c: Any, chain: DigestChain) -> list[bytes]:
        """The perfect subtrees the Merkle tree of ``chain.events`` leaves ends in (O(log n)
        rows). Views made before the tree was kept have none: the tree is then made here, in
        this transaction, from the log's hashes up to the chain's position (once)."""
        wanted = MerkleAppender.frontier_nodes(chain.events)
        found = self._tree_nodes(c, wanted)
        if len(found) == len(wanted):
            return [found[key] for key in wanted]
        assert self.log is not None, "the tree is made from the log"
        c.execute(self._q("DELETE FROM {p}merkle_nodes"))
        earlier = DigestChain()
        after = 0
        while after < chain.position:
            page = self.log.page(after, 5000)
            page = [e for e in page if e.position <= chain.position]
            if not page:
                break
            earlier.extend((e.position, e.hash) for e in page)
            self._insert(c, "merkle_nodes", earlier.take_tree())
            after = page[-1].position
        return earlier.frontier

    def _tree_nodes(
        self, c: Any, wanted: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """The stored perfect-subtree nodes among ``wanted`` ((level, index) pairs)."""
        keys = sorted(set(wanted))
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(keys), 200):
            chunk = keys[start : start + 200]
            where = " OR ".join("(level = ? AND idx = ?)" for _ in chunk)
            c.execute(
                self._q(f"SELECT level, idx, hash FROM {{p}}merkle_nodes WHERE {where}"),
                [value for key in chunk for value in key],
            )
            found.update(
                {(int(r["level"]), int(r["idx"])): bytes.fromhex(r["hash"]) for r in c.fetchall()}
            )
        return found

    def _write_chain(self, c: Any, chain: DigestChain) -> None:
        """The chain's new checkpoints, its head, and the tree's new nodes."""
        if chain.checkpoints:
            c.executemany(
                self._q("INSERT INTO {p}digests (position, digest, events) VALUES (?, ?, ?)"),
                chain.checkpoints,
            )
        self._write_head(c, chain.position, chain.digest, chain.events)
        self._insert(c, "merkle_nodes", chain.take_tree())

    def _write_head(self, c: Any, position: int, digest: str, events: int) -> None:
        c.execute(
            self._q(
                "INSERT INTO {p}chain_head (id, position, digest, events) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET position = excluded.position, "
                "digest = excluded.digest, events = excluded.events"
            ),
            (position, digest, events),
        )

    def drop_tables(self) -> None:
        """Forget every view and its tracking, so that the next catch-up starts at 0."""
        with self.datastore.transaction(commit=True) as c:
            self._lock_views(c)
            for table in VIEW_TABLES:
                c.execute(self._q(f"DELETE FROM {{p}}{table}"))
            c.execute(self._q(self._delete_tracking_statement()), (APPLICATION_NAME,))

    # ---- reading ------------------------------------------------------------------------

    def select(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._q(statement), tuple(params))
            return list(c.fetchall())

    def stream_heads(self, stream_ids: Sequence[str]) -> dict[str, tuple[int, int, str]]:
        """Each named stream's last event the digest took in: ``{stream_id: (version,
        position, hash)}`` (streams the views have not seen are absent)."""
        found: dict[str, tuple[int, int, str]] = {}
        for start in range(0, len(stream_ids), 500):
            chunk = list(stream_ids[start : start + 500])
            rows = self.select(
                "SELECT stream_id, version, position, hash FROM {p}stream_heads "
                f"WHERE stream_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            found.update(
                {r["stream_id"]: (int(r["version"]), int(r["position"]), r["hash"]) for r in rows}
            )
        return found

    def heads_by_position(self) -> dict[int, tuple[str, int, str]]:
        """Every stream's last event the digest took in: ``{position: (stream_id, version,
        hash)}`` (one row per stream: some thousands)."""
        rows = self.select("SELECT stream_id, version, position, hash FROM {p}stream_heads")
        return {int(r["position"]): (r["stream_id"], int(r["version"]), r["hash"]) for r in rows}

    def chain_head(self) -> tuple[int, str, int]:
        """The digest chain's head as the views last wrote it: ``(position, digest, events)``;
        ``(0, GENESIS, 0)`` before any event."""
        rows = self.select("SELECT position, digest, events FROM {p}chain_head WHERE id = 1")
        if not rows:
            return 0, GENESIS, 0
        return int(rows[0]["position"]), rows[0]["digest"], int(rows[0]["events"])

    def checkpoints(self) -> list[tuple[int, str, int]]:
        """Every stored digest checkpoint, ``(position, digest, events)`` in position order."""
        rows = self.select("SELECT position, digest, events FROM {p}digests ORDER BY position")
        return [(int(r["position"]), r["digest"], int(r["events"])) for r in rows]

    # ---- the Merkle tree (RFC 9162 §2.1) ---------------------------------------------------

    def tree_size_at(self, position: int) -> int:
        """How many events the log held up to ``position`` as the views took them in: the
        size of the Merkle tree (and the digest's event count) there."""
        rows = self.select(
            "SELECT idx FROM {p}merkle_nodes WHERE level = 0 AND position <= ? "
            "ORDER BY position DESC LIMIT 1",
            (position,),
        )
        return int(rows[0]["idx"]) + 1 if rows else 0

    def leaves_at(self, positions: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        """``{position: (leaf index, leaf hash)}`` of the events at ``positions`` (absent: not
        taken in by the views)."""
        found: dict[int, tuple[int, bytes]] = {}
        wanted = sorted(set(positions))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.select(
                "SELECT idx, hash, position FROM {p}merkle_nodes WHERE level = 0 AND position "
                f"IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            found.update(
                {int(r["position"]): (int(r["idx"]), bytes.fromhex(r["hash"])) for r in rows}
            )
        return found

    def tree_computed(self, compute: Callable[[NodeLookup], T]) -> T:
        """``compute`` (a function of ``domain.merkle``'s over a node lookup) over the stored
        tree, its nodes read in one query. Raises ValueError when it needs a node the views
        have not made (a tree size beyond what they took in)."""
        wanted = needed_nodes(compute)
        with self.datastore.transaction(commit=False) as c:
            found = self._tree_nodes(c, wanted)
        missing = wanted - found.keys()
        if missing:
            level, index = min(missing)
            msg = (
                f"the tree has no leaf {index << level} yet: the views took in "
                f"{self.chain_head()[2]} events"
            )
            raise ValueError(msg)
        return compute(lambda level, index: found[(level, index)])

    def tree_head(self, size: int) -> bytes:
        """The Merkle tree head over the first ``size`` events (RFC 9162 MTH)."""
        return self.tree_computed(lambda nodes: tree_head(nodes, size))

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
        assert self.log is not None, "digests between checkpoints come from the log"
        for event_hash in self.log.hashes(start, position):
            digest = digest_step(digest, event_hash)
            events += 1
        return digest, events


class SQLiteLedgerView(SQLiteTrackingRecorder, LedgerView):
    """The views in their own SQLite file beside the event log."""

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *(self._q(t) for t in _TABLES)]

    def _select_tracking_statement(self) -> str:
        return "SELECT MAX(notification_id) AS n FROM tracking WHERE application_name = ?"

    def _delete_tracking_statement(self) -> str:
        return "DELETE FROM tracking WHERE application_name = ?"

    @contextmanager
    def _rewriting(self, c: Any) -> Iterator[None]:
        """A page cache big enough for a rebuild's transaction. With the default 2 MB, once
        the tables outgrow it, the page cache spills at every few hundred rows written (a
        partner's snapshot alone fills a page or two): a third of the rebuild's writing."""
        c.execute("PRAGMA cache_size")
        before = c.fetchone()[0]
        c.execute(f"PRAGMA cache_size = -{REBUILD_CACHE_KIB}")
        try:
            yield
        finally:
            c.execute(f"PRAGMA cache_size = {int(before)}")


class PostgresLedgerView(SchemaOnce, PostgresTrackingRecorder, LedgerView):
    """The views in the event log's PostgreSQL database, tables prefixed ``ledger_views_``."""

    prefix = "ledger_views_"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(SQL(self._q(t)) for t in _TABLES)  # type: ignore[misc]
        # The log is in the same database: read it there, also when the library's projection
        # runner built this view in a process of its own.
        self.log = LogReader(
            PostgresApplicationRecorder(datastore, events_table_name=LOG_TABLE_POSTGRES)
        )

    def _q(self, statement: str) -> str:
        return statement.replace("{p}", self.prefix).replace("?", "%s")

    def _schema_found(self, curs: Any, *, complete: bool) -> None:  # noqa: ARG002
        """What the library's ``create_table`` learns before creating (whether the tracking
        table is there, and its migration), learnt here under the schema lock."""
        schema = self.datastore.schema
        self.tracking_table_exists = table_exists(curs, f"{schema}.{self.tracking_table_name}")
        if self.tracking_table_exists:
            migration = self._max_tracking_id(self.table_migration_identifier, curs)
            self.tracking_migration_current = self.tracking_migration_previous = migration

    def _insert(self, c: Any, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """COPY rather than a statement a row: a quarter of the client's time, which matters
        most for a rebuild (psycopg without its C extension spends ~20 µs on a row's INSERT)."""
        if rows:
            with c.copy(self._q(f"COPY {{p}}{table} FROM STDIN")) as copy:
                for row in rows:
                    copy.write_row(row)

    def _lock_views(self, c: Any) -> None:
        """Several processes keep these views (API workers' catch-up, the library's runner,
        CLI commands). Each page is read, folded and written in a transaction that first takes
        this advisory lock, so it reads the tracked position and the digest chain's head as the
        previous page left them: two overlapping pages cannot both extend the chain."""
        c.execute("SELECT pg_advisory_xact_lock(%s)", (VIEWS_LOCK_KEY,))

    def _advance_tracking(self, c: Any, read: int, position: int) -> None:
        """A conditional update, whatever the lock: the position moves from the one read."""
        table = f"{self.datastore.schema}.{self.tracking_table_name}"
        if read:
            c.execute(
                f"UPDATE {table} SET notification_id = %s "
                "WHERE application_name = %s AND notification_id = %s",
                (position, APPLICATION_NAME, read),
            )
        else:
            c.execute(
                f"INSERT INTO {table} (application_name, notification_id) VALUES (%s, %s) "
                "ON CONFLICT (application_name) DO UPDATE "
                "SET notification_id = excluded.notification_id "
                f"WHERE {table}.notification_id IS NULL OR {table}.notification_id = 0",
                (APPLICATION_NAME, position),
            )
        if c.rowcount != 1:
            msg = f"the views' tracked position moved from {read} while this page was written"
            raise IntegrityError(msg)
        self._announce(c, position)

    def _announce(self, c: Any, position: int) -> None:
        c.execute("SELECT pg_notify(%s, %s)", (VIEWS_CHANNEL, str(position)))

    def _select_tracking_statement(self) -> str:
        return (
            f"SELECT MAX(notification_id) AS n FROM {self.tracking_table_name} "
            "WHERE application_name = ?"
        )

    def _delete_tracking_statement(self) -> str:
        return f"DELETE FROM {self.tracking_table_name} WHERE application_name = ?"
