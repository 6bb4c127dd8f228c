"""The one tree of errors the ledger raises when a command breaks a rule.

    LedgerError                      every refusal; carries a human ``detail``
    ├── NotFound                     HTTP 404
    │   ├── PartnerNotFound
    │   └── CoalitionNotFound
    ├── InvalidCommand               HTTP 422: the command can never succeed as written
    │   ├── ValidationFailed         fields missing, unknown, malformed (carries ``problems``)
    │   ├── UnknownReference         a commitment, breach, feedback or partner id not on record
    │   └── InvalidRetraction        retracting a retraction, a registration, an unknown version
    └── Conflict                     HTTP 409: the command clashes with the current state
        ├── AlreadyClosed            a commitment already fulfilled or cancelled
        ├── AlreadyRepaired          a breach repaired twice
        ├── AlreadyRetracted         an event retracted twice
        ├── StillReferenced          retracting an entry that later entries depend on
        ├── MembershipConflict       joining twice, leaving when not a member
        ├── DuplicateId              a caller-given id already used within the partner
        ├── VersionConflict          ``expected_version`` is not the current version
        └── UnvouchedContent         a report's events no longer match their hashes, chains
                                     or the digest the views took them into (names them)
    └── Busy                         HTTP 503 with Retry-After: the store cannot take the write
                                     now (its log is locked past the lock timeout, or other
                                     writers kept winning the race); nothing was recorded
    DamagedEvent                     (not a refusal) a stored event no longer decodes: HTTP 500

The API maps each branch to its status code in one place; the CLI prints ``detail``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AlreadyClosed",
    "AlreadyRepaired",
    "AlreadyRetracted",
    "Busy",
    "CoalitionNotFound",
    "Conflict",
    "DamagedEvent",
    "DuplicateId",
    "InvalidCommand",
    "InvalidRetraction",
    "LedgerError",
    "MembershipConflict",
    "NotFound",
    "PartnerNotFound",
    "Problem",
    "StillReferenced",
    "UnknownReference",
    "UnvouchedContent",
    "UnvouchedEvent",
    "ValidationFailed",
    "VersionConflict",
]


class LedgerError(Exception):
    """A command was refused; nothing was recorded."""

    title = "The ledger refused the request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(LedgerError):
    title = "Not found"


class PartnerNotFound(NotFound):
    def __init__(self, partner_id: object) -> None:
        super().__init__(f"No partner with id {partner_id} is on record.")
        self.partner_id = partner_id


class CoalitionNotFound(NotFound):
    def __init__(self, coalition_id: object) -> None:
        super().__init__(f"No coalition with id {coalition_id} is on record.")
        self.coalition_id = coalition_id


class InvalidCommand(LedgerError):
    title = "The request cannot be recorded as written"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a command: where (``field``, dotted) and what (``message``)."""

    field: str
    message: str


class ValidationFailed(InvalidCommand):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class UnknownReference(InvalidCommand):
    pass


class InvalidRetraction(InvalidCommand):
    pass


class Conflict(LedgerError):
    title = "The request conflicts with what is on record"


class AlreadyClosed(Conflict):
    pass


class AlreadyRepaired(Conflict):
    pass


class AlreadyRetracted(Conflict):
    pass


class StillReferenced(Conflict):
    pass


class MembershipConflict(Conflict):
    pass


class DuplicateId(Conflict):
    pass


class VersionConflict(Conflict):
    def __init__(self, expected_version: int, current_version: int) -> None:
        super().__init__(
            f"expected_version {expected_version} is stale: the current version is "
            f"{current_version}. Reload and try again."
        )
        self.expected_version = expected_version
        self.current_version = current_version


@dataclass(frozen=True)
class UnvouchedEvent:
    """One stored event a report will not vouch for: where it is and what is wrong with it
    (``stream_id`` empty when the fault is the log's digest at ``position``, not one event)."""

    position: int
    stream_id: str
    version: int
    problem: str

    def __str__(self) -> str:
        if not self.stream_id:
            return f"position {self.position}: {self.problem}"
        return (
            f"position {self.position}: stream {self.stream_id} version {self.version}: "
            f"{self.problem}"
        )


class UnvouchedContent(Conflict):
    """A report refused to state a digest over events whose stored content no longer matches
    their hashes, their chains, or the hashes the ledger digest took in (SPEC §5)."""

    title = "The ledger's stored events do not match their hashes"

    def __init__(self, events: Sequence[UnvouchedEvent]) -> None:
        self.events = tuple(events)
        named = "; ".join(str(e) for e in self.events)
        super().__init__(
            f"The report is refused: {len(self.events)} stored event(s) it counts do not match "
            f"their hashes ({named}). Run `pledger verify` and restore the ledger from a backup."
        )


class Busy(LedgerError):
    """The request could not be served now, through no fault of its own (a write waiting for
    the log's lock, or as many heavy reads running as allowed); nothing was recorded and the
    same request may be sent again after ``retry_after`` seconds."""

    title = "The ledger is busy"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DamagedEvent(Exception):
    """A stored event that no longer decodes (damaged storage): not the caller's fault, and no
    retry helps. Names the event, by its position in the log when the reader knows it;
    ``pledger verify`` lists every such event."""

    def __init__(self, stream_id: str, version: int, position: int | None, reason: str) -> None:
        self.stream_id = stream_id
        self.version = version
        self.position = position
        self.reason = reason
        where = "" if position is None else f" at position {position}"
        super().__init__(
            f"stored event {stream_id} version {version} does not decode{where}: {reason}"
        )
