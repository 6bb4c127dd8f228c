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

Incremental: recomputing a hash means parsing the event's JSON and serialising it again
(tens of µs). An event whose stored bytes (topic and state) hash to what they hashed to when
its content last checked out needs no recomputing; its stored bytes are still read and hashed
on every report (SHA-256 of some hundred bytes: about a µs), so content changed after it was
verified is caught. The chain links and the heads are compared every time.
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
from projections.log import LogReader, entry_of
from projections.logtable import stream_id_text
from projections.store import LedgerView

__all__ = ["EventVouching", "log_behind_views"]

REMEMBER_EVENTS = 500_000  # verified fingerprints kept (about 100 bytes each)

# (stream_id, version) -> (SHA-256 of topic and state, stored hash, stored prev_hash)
_Verified = dict[tuple[str, int], tuple[bytes, str, str]]


class EventVouching:
    """Checks the stored events of a few streams before a report vouches for them."""

    def __init__(self, view: LedgerView, log: LogReader) -> None:
        self.view = view
        self.log = log
        self._lock = threading.Lock()
        self._verified: _Verified = {}

    def check(self, stream_ids: Sequence[str]) -> None:
        """Check every stored event of ``stream_ids`` (stream UUIDs as lowercase text).

        Returns nothing when all is well; raises ``UnvouchedContent`` (HTTP 409, CLI exit 1)
        naming every event at fault: content that no longer matches its hash (or no longer
        decodes), a broken chain link, or a stream whose chain no longer ends in the hash the
        views' digest took in at that version.
        """
        wanted = list(dict.fromkeys(stream_ids))
        rows = self._read(wanted)
        heads = self.view.stream_heads(wanted)
        seen = self.view.processed_position()
        faults: list[UnvouchedEvent] = []
        for stream_id in wanted:
            faults.extend(self._check_stream(stream_id, rows.get(stream_id, []), heads, seen))
        if faults:
            raise UnvouchedContent(faults)

    def _check_stream(
        self,
        stream_id: str,
        rows: list[tuple[int, int, str, bytes]],
        heads: dict[str, tuple[int, int, str]],
        seen: int,
    ) -> list[UnvouchedEvent]:
        faults: list[UnvouchedEvent] = []
        previous_version, previous_hash = 0, GENESIS
        stored_hashes: dict[int, tuple[int, str]] = {}  # version -> (position, hash)
        for position, version, topic, state in rows:
            stored_hash, prev_hash, problem = self._content(stream_id, version, topic, state)
            if problem is None and version != previous_version + 1:
                problem = f"version {version} follows version {previous_version}"
            if problem is None and prev_hash != previous_hash:
                problem = f"prev_hash does not match the hash of version {previous_version}"
            if problem is not None:
                faults.append(UnvouchedEvent(position, stream_id, version, problem))
            stored_hashes[version] = (position, stored_hash)
            previous_version, previous_hash = version, stored_hash
        head = heads.get(stream_id)
        taken = head[0] if head is not None else 0
        faults.extend(
            UnvouchedEvent(
                position,
                stream_id,
                version,
                f"recorded at a position the views had already passed ({seen}): "
                "an earlier event there was removed",
            )
            for position, version, _, _ in rows
            if version > taken and position <= seen
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
        try:
            entry = entry_of(0, stream_id, version, topic, state)
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
            for row in rows:
                found.setdefault(stream_id_text(row["originator_id"]), []).append(
                    (
                        int(row["position"]),
                        int(row["originator_version"]),
                        row["topic"],
                        bytes(row["state"]),
                    )
                )
        return found


def log_behind_views(view: LedgerView, log: LogReader, log_position: int) -> list[str]:
    """What a cheap look (two indexed reads) finds wrong between the log and the views, for
    ``/healthz`` (issue 15 item 5): the log ending before the position the views took in
    (events removed), or the position of the views' last event no longer holding the event
    they took in there (rewritten, or reused after a deletion). Empty when they agree; the
    whole comparison is ``pledger verify``'s. ``log_position``: the log's last position."""
    found: list[str] = []
    tracked = view.processed_position()
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
