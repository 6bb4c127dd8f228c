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
from domain.serialization import public_event

__all__ = ["AuditProblem", "AuditReport", "export_events", "verify_log"]


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
        }


def _stored_hash(state: bytes) -> str | None:
    try:
        value = orjson.loads(state).get("hash")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def verify_log(
    ledger: Partnerships,
    *,
    upto: int | None = None,
    advance: Callable[[int], None] = lambda _: None,
) -> AuditReport:
    """Recompute every event's hash, every chain link and the digest, streaming the log."""
    report = AuditReport()
    last: dict[UUID | str, tuple[int, str]] = {}  # stream -> (version, stored hash)
    for notification in ledger.notifications(upto=upto):
        stream, version = notification.originator_id, notification.originator_version
        where = (notification.id, str(stream), version)
        stored_hash = _stored_hash(notification.state)
        previous_version, previous_hash = last.get(stream, (0, GENESIS))
        try:
            event = ledger.decode(notification)
        except MapperDeserialisationError as error:
            report.problems.append(
                AuditProblem(*where, f"stored content no longer decodes: {error}")
            )
        else:
            if event.compute_hash() != event.hash:
                report.problems.append(
                    AuditProblem(*where, "stored content no longer matches its hash")
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
    return report


def export_events(ledger: Partnerships, *, after: int = 0) -> Iterator[dict[str, Any]]:
    """The log in the shape of ``GET /v1/events``, streaming."""
    for notification in ledger.notifications(after=after):
        yield public_event(ledger.decode(notification), notification.id)
