"""Verification of the audit trail (SPEC §5): every event's hash, every chain link, the digest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import MapperDeserialisationError

from domain.application import Partnerships
from domain.hashing import GENESIS, digest_step
from domain.merkle import MerkleAppender, event_leaf_hash
from domain.personal import CONTENT_ERASED
from domain.serialization import public_event
from domain.values import PersonalDataErased
from projections.checkpoints import Checkpoint

__all__ = [
    "AuditProblem",
    "AuditReport",
    "ViewsSeen",
    "check_checkpoint",
    "export_events",
    "verify_log",
]


@dataclass(frozen=True)
class ViewsSeen:
    """What the views have taken in (issue 15 item 5), to compare with the log as it is now.

    ``tracked``: the last position the views took in; ``digests``: ``{position: (digest,
    events)}``, their digest checkpoints and the chain's head; ``heads``: ``{position:
    (stream_id, version, hash)}``, each stream's last event the digest took in.
    """

    tracked: int = 0
    digests: dict[int, tuple[str, int]] = field(default_factory=dict)
    heads: dict[int, tuple[str, int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditProblem:
    position: int
    stream_id: str
    version: int
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "stream_id": self.stream_id,
            "version": self.version,
            "problem": self.problem,
        }


@dataclass
class AuditReport:
    events_checked: int = 0
    position: int = 0
    digest: str = GENESIS
    problems: list[AuditProblem] = field(default_factory=list)
    # Format 1 events whose personal values an erasure overwrote: their stored hash still
    # chains, but their content can no longer be checked against it (issue 16).
    unchecked: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "position": self.position,
            "digest": self.digest,
            "problems": [p.as_dict() for p in self.problems],
            "unchecked": [p.as_dict() for p in self.unchecked],
        }


def _stored_hash(state: bytes) -> str | None:
    try:
        value = orjson.loads(state).get("hash")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _content_erased(state: bytes) -> bool:
    """Whether an erasure overwrote this format 1 event's personal values (domain.personal)."""
    return f'"{CONTENT_ERASED}":true'.encode() in state and bool(
        orjson.loads(state).get(CONTENT_ERASED)
    )


def verify_log(
    ledger: Partnerships,
    *,
    upto: int | None = None,
    seen: ViewsSeen | None = None,
    advance: Callable[[int], None] = lambda _: None,
) -> AuditReport:
    """Recompute every event's hash, every chain link and the digest, streaming the log.

    With ``seen`` (what the views took in), also compare the log with it: a log that ends
    before the views' tracked position (events removed), a digest that no longer matches one
    the views chained, and a position that no longer holds the event the views took in there
    (a position reused after a deletion) are problems too. Returns an ``AuditReport``; raises
    nothing for a damaged log (every fault is a problem in the report).
    """
    report = AuditReport()
    seen = seen or ViewsSeen()
    marks = sorted(seen.digests)  # positions whose digest the views chained, ascending
    found_heads: set[int] = set()
    last: dict[UUID | str, tuple[int, str]] = {}  # stream -> (version, stored hash)
    erased_content: dict[tuple[str, int], tuple[int, str, int]] = {}  # (stream, version) -> where
    erasures: dict[tuple[str, int], int] = {}  # (stream, version) erased -> erasure's position
    withheld: dict[tuple[str, int], tuple[int, str, int]] = {}  # committed values not held
    for notification in ledger.notifications(upto=upto):
        while marks and marks[0] < notification.id:
            _compare_digest(report, marks.pop(0), seen)
        stream, version = notification.originator_id, notification.originator_version
        where = (notification.id, str(stream), version)
        stored_hash = _stored_hash(notification.state)
        head = seen.heads.get(notification.id)
        if head is not None:
            found_heads.add(notification.id)
            if head != (str(stream), version, stored_hash):
                report.problems.append(
                    AuditProblem(
                        *where,
                        f"not the event the views took in at this position (stream {head[0]} "
                        f"version {head[1]}, hash {head[2]}): a position rewritten or reused "
                        "after a deletion",
                    )
                )
        previous_version, previous_hash = last.get(stream, (0, GENESIS))
        try:
            event = ledger.decode(notification)
        except MapperDeserialisationError as error:
            report.problems.append(
                AuditProblem(*where, f"stored content no longer decodes: {error}")
            )
        else:
            if isinstance(event.data, PersonalDataErased):
                for erased in event.data.fields:
                    erasures[(str(erased.stream_id), erased.version)] = notification.id
            if event.seal is not None and set(event.seal.disclosed) != set(event.seal.commitments):
                withheld[(str(stream), version)] = where
            if _content_erased(notification.state):
                erased_content[(str(stream), version)] = where
            elif event.compute_hash() != event.hash:
                report.problems.append(
                    AuditProblem(*where, "stored content no longer matches its hash")
                )
            for name in event.seal.mismatches() if event.seal is not None else ():
                report.problems.append(
                    AuditProblem(
                        *where, f"the personal value of {name} does not match its commitment"
                    )
                )
            if event.prev_hash != previous_hash:
                report.problems.append(
                    AuditProblem(
                        *where, f"prev_hash does not match the hash of version {previous_version}"
                    )
                )
        if version != previous_version + 1:
            report.problems.append(
                AuditProblem(*where, f"version {version} follows version {previous_version}")
            )
        last[stream] = (version, stored_hash or "")
        report.digest = digest_step(report.digest, stored_hash or "")
        report.events_checked += 1
        report.position = notification.id
        advance(1)
    for key, where in sorted(withheld.items(), key=lambda item: item[1]):
        if key not in erasures:
            report.problems.append(
                AuditProblem(
                    *where,
                    "personal values missing or unreadable, and no personal_data_erased "
                    "event names it: the personal-data table was changed",
                )
            )
    for key, where in sorted(erased_content.items(), key=lambda item: item[1]):
        erasure = erasures.get(key)
        if erasure is None:
            report.problems.append(
                AuditProblem(
                    *where,
                    "marked as erased, but no personal_data_erased event names it: its "
                    "content was changed",
                )
            )
        else:
            report.unchecked.append(
                AuditProblem(
                    *where,
                    "content no longer checkable: its personal data was erased by the "
                    f"personal_data_erased event at position {erasure} (recorded before "
                    "personal values were kept as commitments)",
                )
            )
    for mark in marks:
        if upto is None or mark <= upto:
            _compare_digest(report, mark, seen)
    if upto is None and report.position < seen.tracked:
        report.problems.append(
            AuditProblem(
                report.position,
                "",
                0,
                f"the log ends at position {report.position}, but the views took in events up "
                f"to position {seen.tracked}: events were removed",
            )
        )
    for position, (stream_id, version, _) in sorted(seen.heads.items()):
        if position not in found_heads and (upto is None or position <= upto):
            report.problems.append(
                AuditProblem(
                    position,
                    stream_id,
                    version,
                    "the event the views took in at this position is no longer in the log",
                )
            )
    return report


def _compare_digest(report: AuditReport, mark: int, seen: ViewsSeen) -> None:
    """The digest after every event up to ``mark`` against the one the views chained."""
    digest, events = seen.digests[mark]
    if (report.digest, report.events_checked) != (digest, events):
        report.problems.append(
            AuditProblem(
                mark,
                "",
                0,
                f"the log's digest at this position is {report.digest} over "
                f"{report.events_checked} events, not the {digest} over {events} events the "
                "views chained: events before it were rewritten, removed or reordered",
            )
        )


def check_checkpoint(
    ledger: Partnerships, checkpoint: Checkpoint, public_key: str
) -> list[AuditProblem]:
    """Whether the log as stored now still extends ``checkpoint`` (issue 15 item 2): its
    signature is this ledger's (``public_key``), and the events up to its position, as stored
    now, are as many as it states and give its ledger digest and its Merkle tree head (RFC
    9162 §2.1). An event edited, reordered, removed or truncated before its position changes
    one of these. Returns the problems found (none: the log extends it)."""
    where = (checkpoint.position, "", 0)
    problems: list[AuditProblem] = []
    if not checkpoint.signed_by(public_key):
        problems.append(
            AuditProblem(*where, "the checkpoint's signature is not this ledger's key's")
        )
    digest, tree = GENESIS, MerkleAppender()
    for notification in ledger.notifications(upto=checkpoint.position):
        stored_hash = _stored_hash(notification.state) or ""
        digest = digest_step(digest, stored_hash)
        tree.append(event_leaf_hash(stored_hash))
    if tree.size != checkpoint.tree_size:
        problems.append(
            AuditProblem(
                *where,
                f"the log holds {tree.size} events up to position {checkpoint.position}, the "
                f"checkpoint {checkpoint.tree_size}: events before it were removed or added",
            )
        )
    if digest != checkpoint.digest:
        problems.append(
            AuditProblem(
                *where,
                f"the log's digest at position {checkpoint.position} is {digest}, not the "
                f"checkpoint's {checkpoint.digest}: events before it were changed",
            )
        )
    head = tree.root().hex()
    if head != checkpoint.tree_head:
        problems.append(
            AuditProblem(
                *where,
                f"the log's tree head over {tree.size} events is {head}, not the "
                f"checkpoint's {checkpoint.tree_head}",
            )
        )
    return problems


def export_events(ledger: Partnerships, *, after: int = 0) -> Iterator[dict[str, Any]]:
    """The log in the shape of ``GET /v1/events``, streaming."""
    for notification in ledger.notifications(after=after):
        yield public_event(ledger.decode(notification), notification.id)
