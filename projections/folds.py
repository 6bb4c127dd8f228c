"""Pure folds: a partner's counting entries and a reference moment in, figures out.

Nothing here touches a database. The views store entries; queries pick the entries that count
at (``as_of``, ``position``) — recorded by ``position``, occurred by ``as_of``, not retracted
by ``position`` — and hand them here, sorted by ``occurred_at`` then version.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, Literal

from domain.dates import day_of
from domain.errors import DamagedEvent

__all__ = [
    "Band",
    "CommitmentView",
    "Component",
    "Entry",
    "Figures",
    "Health",
    "PartnerSnapshot",
    "band_of",
    "evolve_partner",
    "figures_of",
    "fold_partner",
    "health_of",
    "no_contacts",
    "round_half_up",
]

Status = Literal["open", "overdue", "fulfilled_on_time", "fulfilled_late", "cancelled"]
Band = Literal["thriving", "steady", "at_risk", "critical"]

DEFAULT_CADENCE = 30
ACK_WINDOW_DAYS = 30
REPAIR_DECAY_DAYS = 180
BREACH_PENALTY = {"minor": 15, "moderate": 35, "severe": 60}
WEIGHTS = {
    "cadence": 25,
    "our_reliability": 25,
    "reciprocity": 15,
    "acknowledgment": 15,
    "trust": 20,
}


# Not frozen: a frozen dataclass pays object.__setattr__ per field, and a rebuild makes one
# Entry per event. Nothing changes an Entry after it is made (dataclasses.replace copies).
@dataclass(slots=True)
class Entry:
    """One recorded event as the views keep it (data exactly as the API shows it)."""

    position: int
    stream_id: str
    version: int
    type: str
    occurred_at: datetime
    data: dict[str, Any]
    recorded_at: str = ""
    recorded_by: str = ""
    prev_hash: str = ""
    hash: str = ""
    retracted: bool = False
    stream_type: str = "partner"


def round_half_up(value: Fraction | Decimal | int, places: int = 0) -> Decimal:
    """Round exactly, halves away from zero for our non-negative figures (x.5 -> x+1)."""
    exact = (
        Decimal(value.numerator) / Decimal(value.denominator)
        if isinstance(value, Fraction)
        else Decimal(value)
    )
    return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


@dataclass
class CommitmentView:
    commitment_id: str
    owed_by: str
    description: str
    resource: str
    made_at: datetime
    original_due_on: date
    due_on: date
    coalition_id: str | None
    amount: str | None
    currency: str | None
    version: int
    fulfilled_at: datetime | None = None
    due_on_at_fulfilment: date | None = None
    cancelled_at: datetime | None = None
    renegotiations: int = 0
    renegotiated_after_due: bool = False
    zone: tzinfo = field(default=UTC, compare=False)  # decides the day of each instant

    def status(self, today: date) -> Status:
        if self.fulfilled_at is not None:
            assert self.due_on_at_fulfilment is not None
            on_time = day_of(self.fulfilled_at, self.zone) <= self.due_on_at_fulfilment
            return "fulfilled_on_time" if on_time else "fulfilled_late"
        if self.cancelled_at is not None:
            return "cancelled"
        return "open" if self.due_on >= today else "overdue"

    @property
    def fulfilled_on(self) -> date | None:
        return day_of(self.fulfilled_at, self.zone) if self.fulfilled_at else None

    @property
    def days_late(self) -> int | None:
        if self.fulfilled_on is None or self.due_on_at_fulfilment is None:
            return None
        return max(0, (self.fulfilled_on - self.due_on_at_fulfilment).days)

    def overdue_days(self, today: date) -> int:
        return (today - self.due_on).days

    def as_dict(self, today: date) -> dict[str, Any]:
        return {
            "commitment_id": self.commitment_id,
            "owed_by": self.owed_by,
            "description": self.description,
            "resource": self.resource,
            "amount": self.amount,
            "currency": self.currency,
            "coalition_id": self.coalition_id,
            "made_on": day_of(self.made_at, self.zone).isoformat(),
            "original_due_on": self.original_due_on.isoformat(),
            "due_on": self.due_on.isoformat(),
            "status": self.status(today),
            "fulfilled_on": self.fulfilled_on.isoformat() if self.fulfilled_on else None,
            "cancelled_on": (
                day_of(self.cancelled_at, self.zone).isoformat() if self.cancelled_at else None
            ),
            "days_late": self.days_late,
            "renegotiations": self.renegotiations,
            "renegotiated_after_due": self.renegotiated_after_due,
        }


@dataclass
class Breach:
    breach_id: str
    severity: str
    caused_by: str
    occurred_at: datetime
    repaired_at: datetime | None = None


@dataclass
class PartnerSnapshot:
    """A partner as it stood: profile, cadence, and every fact the figures are made from.

    ``began_at`` is the relationship's start: its earliest counted entry, the registration or
    history dated before it (SPEC §3). ``zone`` is the ledger's time zone: it decides the
    calendar day of every instant (it is not part of what the views store)."""

    partner_id: str
    version: int = 0
    position: int = 0
    profile: dict[str, Any] = field(default_factory=dict)
    stage: str = "prospect"
    cadence_days: int = DEFAULT_CADENCE
    registered_at: datetime | None = None
    began_at: datetime | None = None
    last_touch_at: datetime | None = None
    commitments: dict[str, CommitmentView] = field(default_factory=dict)
    payments: list[tuple[datetime, Decimal, str, str | None]] = field(default_factory=list)
    thanks: list[datetime] = field(default_factory=list)
    outcomes: list[datetime] = field(default_factory=list)
    feedback: list[datetime] = field(default_factory=list)
    contributions: list[datetime] = field(default_factory=list)
    breaches: dict[str, Breach] = field(default_factory=dict)
    zone: tzinfo = field(default=UTC, compare=False)

    @property
    def name(self) -> str:
        return str(self.profile.get("name", ""))


_PROFILE_FIELDS = (
    "name",
    "kind",
    "roles",
    "communities",
    "region",
    "referred_by",
    "preferences",
    "contacts",
)


def no_contacts() -> dict[str, Any]:
    """The contacts of a partner registered before contacts existed, or without any."""
    return {"emails": [], "phones": [], "address": None, "people": []}


_WORLD_ORDER = operator.attrgetter("occurred_at", "version")  # (occurred_at, version), in C


def counting(entries: Iterable[Entry], as_of: datetime, position: int) -> list[Entry]:
    """The entries that count at (as_of, position), in world order: recorded by ``position``,
    happened by ``as_of``, and not retracted by a retraction recorded by ``position``."""
    found = [e for e in entries if e.position <= position]
    retracted = {e.data["version"] for e in found if e.type == "entry_retracted"}
    kept = [
        e
        for e in found
        if e.occurred_at <= as_of and e.type != "entry_retracted" and e.version not in retracted
    ]
    kept.sort(key=_WORLD_ORDER)
    return kept


def fold_partner(partner_id: str, entries: Iterable[Entry], zone: tzinfo = UTC) -> PartnerSnapshot:
    """Fold the counting entries of one partner, in (occurred_at, version) order, counting
    calendar days in ``zone`` (the ledger's time zone).

    The registration comes first even when an entry is dated before it (history recorded
    after the partner was registered today): what happened still counts, and the
    relationship began at the earliest entry (``began_at``)."""
    snap = PartnerSnapshot(partner_id, zone=zone)
    ordered = sorted(entries, key=lambda e: e.type != "partner_registered")  # stable
    for entry in ordered:
        try:
            evolve_partner(snap, entry)
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            # Recorded events always fold: one that does not was damaged in storage.
            reason = f"{type(error).__name__}: {error}"
            raise DamagedEvent(entry.stream_id, entry.version, entry.position, reason) from error
        if entry.version > snap.version:
            snap.version = entry.version
        if entry.position > snap.position:
            snap.position = entry.position
    return snap


def evolve_partner(snap: PartnerSnapshot, entry: Entry) -> None:
    """One step of the fold: the next counting entry, in world order, changes the snapshot."""
    data, kind = entry.data, entry.type
    if snap.began_at is None or entry.occurred_at < snap.began_at:
        snap.began_at = entry.occurred_at
    if kind == "partner_registered":
        snap.profile = {name: data.get(name) for name in _PROFILE_FIELDS}
        snap.profile["contacts"] = data.get("contacts") or no_contacts()
        snap.registered_at = entry.occurred_at
    elif kind == "profile_updated":
        snap.profile.update({k: v for k, v in data.items() if v is not None})
    elif kind == "stage_changed":
        snap.stage = data["stage"]
    elif kind == "checkin_cadence_agreed":
        snap.cadence_days = int(data["every_days"])
    elif kind == "meeting_held" or (kind == "contact_made" and data["direction"] == "inbound"):
        if snap.last_touch_at is None or entry.occurred_at > snap.last_touch_at:
            snap.last_touch_at = entry.occurred_at
    elif kind == "commitment_made":
        due = date.fromisoformat(data["due_on"])
        snap.commitments[data["commitment_id"]] = CommitmentView(
            commitment_id=data["commitment_id"],
            owed_by=data["owed_by"],
            description=data["description"],
            resource=data["resource"],
            made_at=entry.occurred_at,
            original_due_on=due,
            due_on=due,
            coalition_id=data.get("coalition_id"),
            amount=data.get("amount"),
            currency=data.get("currency"),
            version=entry.version,
            zone=snap.zone,
        )
    elif kind in ("commitment_fulfilled", "commitment_renegotiated", "commitment_cancelled"):
        commitment = snap.commitments.get(data["commitment_id"])
        if commitment is not None:
            _change_commitment(snap, commitment, entry)
    elif kind == "payment_made":
        snap.payments.append(
            (
                entry.occurred_at,
                Decimal(data["amount"]),
                data["currency"],
                data.get("commitment_id"),
            )
        )
    elif kind == "thanks_expressed":
        snap.thanks.append(entry.occurred_at)
    elif kind == "outcome_shared":
        snap.outcomes.append(entry.occurred_at)
    elif kind == "feedback_received":
        snap.feedback.append(entry.occurred_at)
        snap.contributions.append(entry.occurred_at)
    elif kind == "trust_breach_recorded":
        snap.breaches[data["breach_id"]] = Breach(
            data["breach_id"], data["severity"], data["caused_by"], entry.occurred_at
        )
    elif kind == "trust_repaired":
        breach = snap.breaches.get(data["breach_id"])
        if breach is not None and breach.repaired_at is None:
            breach.repaired_at = entry.occurred_at


def _change_commitment(snap: PartnerSnapshot, commitment: CommitmentView, entry: Entry) -> None:
    if commitment.fulfilled_at is not None or commitment.cancelled_at is not None:
        return  # already closed when this happened in the world
    if entry.type == "commitment_fulfilled":
        commitment.fulfilled_at = entry.occurred_at
        commitment.due_on_at_fulfilment = commitment.due_on
        if commitment.owed_by == "partner":
            snap.contributions.append(entry.occurred_at)
    elif entry.type == "commitment_cancelled":
        commitment.cancelled_at = entry.occurred_at
    else:
        if commitment.due_on < day_of(entry.occurred_at, snap.zone):
            commitment.renegotiated_after_due = True
        commitment.renegotiations += 1
        commitment.due_on = date.fromisoformat(entry.data["due_on"])


# ---- fulfilment figures -------------------------------------------------------------------


@dataclass
class Figures:
    made: int = 0
    open: int = 0
    overdue: int = 0
    fulfilled_on_time: int = 0
    fulfilled_late: int = 0
    cancelled: int = 0
    renegotiated_after_due: int = 0

    def add(self, commitment: CommitmentView, today: date) -> None:
        self.made += 1
        status = commitment.status(today)
        setattr(self, status, getattr(self, status) + 1)
        self.renegotiated_after_due += commitment.renegotiated_after_due

    def __iadd__(self, other: Figures) -> Figures:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def as_dict(self) -> dict[str, Any]:
        fulfilled = self.fulfilled_on_time + self.fulfilled_late
        due = fulfilled + self.overdue
        return {
            **vars(self),
            "fulfilled": fulfilled,
            "fulfilment_rate": _rate(fulfilled, due),
            "on_time_rate": _rate(self.fulfilled_on_time, due),
        }


def _rate(numerator: int, denominator: int) -> float | None:
    if denominator == 0:
        return None
    return float(round_half_up(Fraction(numerator, denominator), 4))


def figures_of(commitments: Iterable[CommitmentView], today: date) -> dict[str, Figures]:
    """Fulfilment figures per side (``us``, ``partner``) at ``today``."""
    sides = {"us": Figures(), "partner": Figures()}
    for commitment in commitments:
        sides[commitment.owed_by].add(commitment, today)
    return sides


# ---- relationship health ------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One part of relationship health (SPEC §3): whether it ``counts`` at the reference (it
    has something to measure), its score 0-100 when it does, and a sentence saying why."""

    name: str
    score: Fraction
    explanation: str
    counts: bool = True

    @property
    def weight(self) -> int:
        return WEIGHTS[self.name]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "counts": self.counts,
            "score": float(round_half_up(self.score, 2)) if self.counts else None,
            "weight": self.weight,
            "explanation": self.explanation,
        }


def _not_counted(name: str, why: str) -> Component:
    return Component(name, Fraction(0), f"Not counted: {why}", counts=False)


@dataclass(frozen=True)
class Health:
    score: int
    band: Band
    components: Sequence[Component]

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "band": self.band,
            "components": [c.as_dict() for c in self.components],
        }


def band_of(score: int) -> Band:
    if score >= 75:
        return "thriving"
    if score >= 50:
        return "steady"
    if score >= 25:
        return "at_risk"
    return "critical"


def health_of(snap: PartnerSnapshot, as_of: datetime) -> Health:
    """Relationship health at ``as_of`` (SPEC §3), days counted in the snapshot's zone."""
    today = day_of(as_of, snap.zone)
    ours = figures_of(snap.commitments.values(), today)["us"]
    components = (
        _cadence(snap, today),
        _our_reliability(ours),
        _reciprocity(snap, ours),
        _acknowledgment(snap, today),
        _trust(snap, today),
    )
    # SPEC §3: the weighted mean of the components that have something to measure, so that
    # nothing scores well merely because nothing was recorded (cadence always counts).
    counting = [c for c in components if c.counts]
    total = sum((Fraction(c.weight) * c.score for c in counting), Fraction(0))
    score = int(round_half_up(total / sum(c.weight for c in counting)))
    return Health(score=score, band=band_of(score), components=components)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _cadence(snap: PartnerSnapshot, today: date) -> Component:
    c = snap.cadence_days
    agreed = f"agreed cadence is every {_plural(c, 'day')}"
    start = snap.last_touch_at or snap.began_at
    if start is None:  # not on record at this reference: nothing to measure from
        return Component("cadence", Fraction(0), f"No relationship on record yet; {agreed}.")
    d = max(0, (today - day_of(start, snap.zone)).days)
    if d <= c:
        score = Fraction(100)
    elif d < 3 * c:
        score = Fraction(100 * (3 * c - d), 2 * c)
    else:
        score = Fraction(0)
    if snap.last_touch_at is None:
        return Component(
            "cadence",
            score,
            f"No two-way contact (a meeting or an inbound contact) in the "
            f"{_plural(d, 'day')} since the relationship began; {agreed}.",
        )
    return Component("cadence", score, f"Last two-way contact {_plural(d, 'day')} ago; {agreed}.")


def _our_reliability(ours: Figures) -> Component:
    count = ours.fulfilled_on_time + ours.fulfilled_late + ours.overdue
    if count == 0:
        return _not_counted("our_reliability", "none of our commitments has come due yet.")
    score = Fraction(100) * (ours.fulfilled_on_time + Fraction(ours.fulfilled_late, 2)) / count
    return Component(
        "our_reliability",
        score,
        f"Of {_plural(count, 'commitment')} of ours that came due, "
        f"{ours.fulfilled_on_time} kept on time, {ours.fulfilled_late} kept late, "
        f"{ours.overdue} overdue.",
    )


def _reciprocity(snap: PartnerSnapshot, ours: Figures) -> Component:
    fulfilled = ours.fulfilled_on_time + ours.fulfilled_late
    gives = fulfilled + len(snap.payments) + len(snap.thanks) + len(snap.outcomes)
    partner_made = sum(1 for c in snap.commitments.values() if c.owed_by == "partner")
    asks = partner_made + len(snap.feedback)
    detail = (
        f"we gave {gives} ({_plural(fulfilled, 'commitment')} kept, "
        f"{_plural(len(snap.payments), 'payment')}, "
        f"{len(snap.thanks)} thanks, {_plural(len(snap.outcomes), 'outcome')} shared) for "
        f"{_plural(asks, 'ask')} ({_plural(partner_made, 'commitment')} of theirs, "
        f"{len(snap.feedback)} feedback received)"
    )
    if asks == 0:
        return _not_counted("reciprocity", f"nothing has been asked of this partner yet; {detail}.")
    return Component(
        "reciprocity", min(Fraction(1), Fraction(gives, asks)) * 100, _sentence(detail)
    )


def _acknowledgment(snap: PartnerSnapshot, today: date) -> Component:
    acks = sorted(snap.thanks + snap.outcomes)
    counted = acknowledged = waiting = 0
    for contribution in snap.contributions:
        day = day_of(contribution, snap.zone)
        # The first acknowledgment at or after the contribution is the earliest candidate:
        # if it falls outside the window, every later one does too.
        first = bisect.bisect_left(acks, contribution)
        if first < len(acks) and (day_of(acks[first], snap.zone) - day).days <= ACK_WINDOW_DAYS:
            counted += 1
            acknowledged += 1
        elif (today - day).days < ACK_WINDOW_DAYS:
            waiting += 1
        else:
            counted += 1
    later = f" ({_plural(waiting, 'newer contribution')} still within 30 days)" if waiting else ""
    if counted == 0:
        return _not_counted(
            "acknowledgment",
            f"no contribution of theirs has been acknowledged or is old enough to judge{later}.",
        )
    return Component(
        "acknowledgment",
        Fraction(100 * acknowledged, counted),
        f"{acknowledged} of {_plural(counted, 'contribution')} of theirs "
        f"(commitments kept, feedback) thanked or followed by an outcome within 30 days{later}.",
    )


def _trust(snap: PartnerSnapshot, today: date) -> Component:
    penalty = Fraction(0)
    open_, weighing = [], []
    for breach in snap.breaches.values():
        cost = Fraction(BREACH_PENALTY[breach.severity])
        if breach.repaired_at is None:
            penalty += cost
            open_.append(f"{breach.severity} -{cost}")
        elif (today - day_of(breach.repaired_at, snap.zone)).days < REPAIR_DECAY_DAYS:
            penalty += cost / 4
            weighing.append(f"{breach.severity} -{float(cost / 4):g}")
    score = max(Fraction(0), 100 - penalty)
    if not snap.breaches:
        return _not_counted("trust", "no breach of trust recorded.")
    if not open_ and not weighing:
        return _not_counted(
            "trust",
            f"{_plural(len(snap.breaches), 'breach', 'breaches')} of trust, every one repaired "
            "over 180 days ago.",
        )
    parts = []
    if open_:
        parts.append(f"{_plural(len(open_), 'open breach', 'open breaches')} ({', '.join(open_)})")
    if weighing:
        parts.append(
            f"{_plural(len(weighing), 'breach', 'breaches')} repaired in the last 180 days "
            f"({', '.join(weighing)})"
        )
    settled = len(snap.breaches) - len(open_) - len(weighing)
    if settled:
        parts.append(
            f"{_plural(settled, 'breach', 'breaches')} repaired over 180 days ago (no cost)"
        )
    return Component("trust", score, _sentence("; ".join(parts)))
