"""What the views' tables hold for a partner, a coalition and the ledger digest.

One definition for both ways the views are kept — a page of events at a time
(``projections.store``) and the rebuild from position 0 (``projections.rebuild``) — so that the
two cannot drift apart. Pure, and light to import: the rebuild's worker processes use it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

import orjson

from domain.hashing import GENESIS, format_instant
from domain.merkle import MerkleAppender
from domain.values import search_key
from projections.folds import CommitmentView, Entry, PartnerSnapshot, counting, fold_partner
from projections.snapshots import snapshot_to_json

__all__ = [
    "CHECKPOINT_EVERY",
    "FAR_FUTURE",
    "DigestChain",
    "FoldedPartner",
    "Totals",
    "TreeRow",
    "coalition_row",
    "column_text",
    "commitment_rows",
    "count_commitments",
    "fold_stream",
    "partner_row",
    "totals_key",
]

CHECKPOINT_EVERY = 256
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)

# commitment_totals, keyed by group and figure: (owed_by, coalition_id, closed, on_time, figure)
Totals = Counter[tuple[str, str, str, int, str]]


@dataclass
class FoldedPartner:
    """A partner's snapshot with what its row records beside it."""

    snap: PartnerSnapshot
    latest: datetime  # the latest occurred_at of any of its events
    registered_pos: int


def fold_stream(
    partner_id: str, entries: Sequence[Entry], upto: int, zone: tzinfo = UTC
) -> FoldedPartner:
    """A partner's current snapshot from its whole stream, as recorded up to ``upto``: the fold
    of the entries that count, whatever order they happened in, days counted in ``zone``."""
    snap = fold_partner(partner_id, counting(entries, FAR_FUTURE, upto), zone)
    recorded = [e for e in entries if e.position <= upto]
    snap.version = max(e.version for e in recorded)
    snap.position = max(e.position for e in recorded)
    return FoldedPartner(
        snap,
        max(e.occurred_at for e in recorded),
        next(e.position for e in recorded if e.type == "partner_registered"),
    )


def column_text(text: str | None) -> str | None:
    """Text for a view's TEXT column. PostgreSQL's text cannot hold U+0000, which text recorded
    before the door refused control characters may carry: there it is shown as U+2400 (␀), on
    both stores alike, so that such an event never stops the views. The columns serve lists,
    filters and sorting; the snapshot (JSON, which escapes it) keeps the text as recorded."""
    return None if text is None else text.replace("\x00", "\u2400")


def partner_row(partner_id: str, folded: FoldedPartner) -> tuple[Any, ...]:
    """The partner's row in ``partners`` (its columns in table order)."""
    snap = folded.snap
    profile = snap.profile
    return (
        partner_id,
        column_text(profile["name"]),
        column_text(search_key(str(profile["name"]))),  # name_key: what q and sort=name compare
        profile["kind"],
        snap.stage,
        column_text(profile.get("region")),
        orjson.dumps(profile.get("roles") or []).decode(),
        orjson.dumps(profile.get("communities") or []).decode(),
        snap.cadence_days,
        format_instant(snap.registered_at) if snap.registered_at else "",
        folded.registered_pos,
        format_instant(snap.last_touch_at) if snap.last_touch_at else None,
        format_instant(folded.latest),
        snap.version,
        snap.position,
        snapshot_to_json(snap).decode(),
    )


def _closed(commitment: CommitmentView) -> str | None:
    if commitment.fulfilled_at is not None:
        return "fulfilled"
    return "cancelled" if commitment.cancelled_at is not None else None


def commitment_rows(partner_id: str, snap: PartnerSnapshot) -> list[tuple[Any, ...]]:
    """The partner's rows in ``commitments`` (columns in table order)."""
    rows = []
    for commitment in snap.commitments.values():
        fulfilled = commitment.fulfilled_at is not None
        rows.append(
            (
                partner_id,
                commitment.commitment_id,
                commitment.owed_by,
                commitment.coalition_id,
                column_text(commitment.description),
                format_instant(commitment.made_at),
                commitment.due_on.isoformat(),
                _closed(commitment),
                int(commitment.days_late == 0) if fulfilled else None,
                int(commitment.renegotiated_after_due),
            )
        )
    return rows


def totals_key(
    owed_by: str, coalition_id: str | None, closed: str | None, on_time: int | None
) -> tuple[str, str, str, int]:
    """A commitment's group in ``commitment_totals`` ('' and -1 stand for none)."""
    return (owed_by, coalition_id or "", closed or "", -1 if on_time is None else int(on_time))


def count_commitments(totals: Totals, rows: Iterable[Sequence[Any]]) -> None:
    """Add ``commitments`` rows (as :func:`commitment_rows` makes them) to their groups'
    totals."""
    for row in rows:
        key = totals_key(row[2], row[3], row[7], row[8])
        totals[(*key, "made")] += 1
        totals[(*key, "after_due")] += int(row[9])


def coalition_row(entries: Sequence[Entry]) -> tuple[Any, ...] | None:
    """A coalition's row in ``coalitions`` from its stream: made when it was formed, then
    following its last event (None before it was formed)."""
    formed = next((e for e in entries if e.type == "coalition_formed"), None)
    if formed is None:
        return None
    last = entries[-1]
    return (
        formed.stream_id,
        column_text(formed.data["name"]),
        format_instant(formed.occurred_at),
        formed.position,
        last.version,
        last.position,
    )


# merkle_nodes rows: (level, index, hash hex, position of the leaf's event or None)
TreeRow = tuple[int, int, str, int | None]


@dataclass
class DigestChain:
    """The ledger digest over event hashes taken in position order, with a checkpoint (for
    ``digests``) every CHECKPOINT_EVERY events; beside it, the Merkle tree over the same
    hashes (RFC 9162 §2.1, ``domain.merkle``): ``frontier`` holds the perfect subtrees the
    tree of ``events`` leaves ends in, and ``tree`` collects the nodes each event completes
    (for ``merkle_nodes``) until the caller takes them."""

    digest: str = GENESIS
    events: int = 0
    position: int = 0
    checkpoints: list[tuple[int, str, int]] = field(default_factory=list)
    frontier: list[bytes] = field(default_factory=list)
    tree: list[TreeRow] = field(default_factory=list)

    def extend(self, hashes: Iterable[tuple[int, str]]) -> None:
        """Take the next events' (position, hash), in position order."""
        taken = list(hashes)
        if not taken:
            return
        first = self.events  # the first new leaf's index
        digest, events = self.digest, self.events
        sha256 = hashlib.sha256
        for position, event_hash in taken:
            # digest_step(digest, event_hash), inlined: a rebuild takes every event here.
            digest = sha256((digest + event_hash).encode("ascii")).hexdigest()
            events += 1
            if events % CHECKPOINT_EVERY == 0:
                self.checkpoints.append((position, digest, events))
        appender = MerkleAppender(self.events, self.frontier)
        made = appender.extend([event_hash for _, event_hash in taken])
        self.tree.extend(
            (level, index, node.hex(), taken[index - first][0] if level == 0 else None)
            for level, index, node in made
        )
        self.digest, self.events, self.position = digest, events, taken[-1][0]
        self.frontier = appender.frontier

    def take_tree(self) -> list[TreeRow]:
        """The tree's nodes made since the last call (the caller writes them)."""
        taken, self.tree = self.tree, []
        return taken
