"""Properties of the views over random, valid ledgers (SQLite).

Hypothesis writes a ledger of one to three partners and a coalition, command by command, each
chosen among those the partner's current state allows (commitments to keep, move or cancel
while open, breaches to repair, entries that may be retracted), at times that mostly move
forward and sometimes reach back. The views then take the log in pages of random sizes, and
must agree with:

* a rebuild from position 0, table for table and answer for answer;
* the fold computed straight from the event store, by the counting rule (an entry counts at
  (as_of, position) iff its position <= position, its occurred_at <= as_of, and no retraction
  at a position <= position cancels it), at several positions and as_of values;
* themselves: a page processed twice changes nothing, and what was answered at an earlier
  position is answered again, byte for byte, once more has been recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from api.wiring import Services
from domain.chained import Stamp
from domain.partner import Partner
from domain.serialization import DATA_MODELS
from domain.values import (
    CoalitionFormed,
    MemberJoined,
    MemberLeft,
    PartnerRegistered,
)

T = TypeVar("T")
START = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
RECORDER = "steward:hypothesis"
MAX_PARTNERS = 3

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- writing a random, valid ledger ---------------------------------------------------------


class Writer:
    """Draws commands one at a time from what the ledger's current state allows."""

    def __init__(self, services: Services, data: st.DataObject) -> None:
        self.services = services
        self.data = data
        self.clock = START
        self.serial = 0
        self.partners: list[UUID] = []
        self.coalition_changed = START
        self.coalition = services.ledger.form_coalition(
            CoalitionFormed(name="Valley Health Equity Coalition"), Stamp(START, RECORDER)
        ).stream_id

    def draw(self, strategy: st.SearchStrategy[T]) -> T:
        return self.data.draw(strategy)

    def pick(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(list(options)))

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def tick(self) -> datetime:
        """Move the clock on by up to two weeks."""
        self.clock += timedelta(minutes=self.draw(st.integers(0, 14 * 24 * 60)))
        return self.clock

    def when(self, floor: datetime) -> datetime:
        """Now on the clock, or sometimes a moment already past, never before ``floor``."""
        moment = self.tick()
        if self.draw(st.integers(0, 3)) == 0:
            moment -= timedelta(minutes=self.draw(st.integers(0, 40 * 24 * 60)))
        return max(moment, floor)

    def record(self, partner_id: UUID, type_: str, when: datetime, **fields: Any) -> None:
        data = DATA_MODELS[type_].model_validate(fields)
        self.services.ledger.record(partner_id, data, Stamp(when, RECORDER))

    def step(self) -> None:
        if not self.partners or (
            len(self.partners) < MAX_PARTNERS and self.draw(st.integers(0, 7)) == 0
        ):
            self.register()
            return
        partner_id = self.pick(self.partners)
        partner = self.services.ledger.get_partner(partner_id)
        assert partner.registered_at is not None
        actions = self.actions(partner)
        getattr(self, self.pick(actions))(partner_id, partner, partner.registered_at)

    def actions(self, partner: Partner) -> list[str]:
        found = [
            "contact",
            "meeting",
            "cadence",
            "commit",
            "pay",
            "thank",
            "feedback",
            "outcome",
            "breach",
            "stage",
            "profile",
            "membership",
        ]
        # Commitments and their outcomes, repairs and retractions are what the views fold with
        # most care: offer them more often than the rest.
        found += ["commit", "commit"]
        if any(c.closed is None for c in partner.commitments.values()):
            found += ["fulfil", "renegotiate", "cancel"] * 2
        if any(not b.repaired for b in partner.breaches.values()):
            found += ["repair"] * 2
        if retractable(partner):
            found += ["retract"] * 2
        return found

    # ---- the commands ---------------------------------------------------------------------

    def register(self) -> None:
        number = len(self.partners) + 1
        data = PartnerRegistered.model_validate(
            {
                "name": self.pick(["Eastside Promotoras", "Luz Marquez", "Valley Institute"])
                + f" {number}",
                "kind": self.pick(["organization", "individual"]),
                "roles": self.draw(
                    st.lists(st.sampled_from(["speaker", "consultant"]), max_size=2)
                ),
                "communities": self.draw(
                    st.lists(st.sampled_from(["rural", "youth", "Latino families"]), max_size=2)
                ),
                "region": self.pick([None, "Central Valley", "Fresno"]),
            }
        )
        recorded = self.services.ledger.register_partner(data, Stamp(self.tick(), RECORDER))
        self.partners.append(recorded.stream_id)

    def contact(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(
            pid,
            "contact_made",
            self.when(floor),
            channel=self.pick(["email", "phone", "in_person"]),
            direction=self.pick(["inbound", "outbound"]),
        )

    def meeting(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        kind = self.pick(["check_in", "listening_session"])
        self.record(pid, "meeting_held", self.when(floor), kind=kind, location="theirs")

    def cadence(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        every = self.draw(st.integers(1, 120))
        self.record(pid, "checkin_cadence_agreed", self.when(floor), every_days=every)

    def commit(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        at = self.when(floor)
        money = self.draw(st.booleans())
        self.record(
            pid,
            "commitment_made",
            at,
            commitment_id=self.next_id("C"),
            owed_by=self.pick(["us", "partner"]),
            description="A promise",
            due_on=(at.date() + timedelta(days=self.draw(st.integers(0, 60)))).isoformat(),
            resource="financial" if money else self.pick(["time", "deliverable"]),
            amount=f"{self.draw(st.integers(1, 900))}.50" if money else None,
            currency="USD" if money else None,
            coalition_id=str(self.coalition) if self.draw(st.booleans()) else None,
        )

    def _open(self, partner: Partner) -> tuple[str, datetime]:
        commitment_id = self.pick(
            sorted(k for k, c in partner.commitments.items() if c.closed is None)
        )
        return commitment_id, partner.commitments[commitment_id].made_at

    def fulfil(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        commitment_id, made_at = self._open(partner)
        at = self.when(max(floor, made_at))
        self.record(pid, "commitment_fulfilled", at, commitment_id=commitment_id)

    def renegotiate(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        commitment_id, made_at = self._open(partner)
        at = self.when(max(floor, made_at))
        due = max(made_at.date(), at.date() + timedelta(days=self.draw(st.integers(-10, 40))))
        self.record(
            pid, "commitment_renegotiated", at, commitment_id=commitment_id, due_on=due.isoformat()
        )

    def cancel(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        commitment_id, made_at = self._open(partner)
        at = self.when(max(floor, made_at))
        self.record(pid, "commitment_cancelled", at, commitment_id=commitment_id, reason="moot")

    def pay(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(
            pid,
            "payment_made",
            self.when(floor),
            amount=f"{self.draw(st.integers(1, 500))}.{self.draw(st.integers(0, 99)):02d}",
            currency=self.pick(["USD", "EUR"]),
            purpose=self.pick(["stipend", "compensation", "reimbursement"]),
            commitment_id=self.pick([None, *sorted(partner.commitments)]),
        )

    def thank(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(
            pid,
            "thanks_expressed",
            self.when(floor),
            form=self.pick(["note", "call", "gift"]),
            for_commitment_id=self.pick([None, *sorted(partner.commitments)]),
        )

    def feedback(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(pid, "feedback_received", self.when(floor), feedback_id=self.next_id("F"))

    def outcome(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        feedback_id = self.pick([None, *sorted(partner.feedback)])
        self.record(pid, "outcome_shared", self.when(floor), feedback_id=feedback_id)

    def breach(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(
            pid,
            "trust_breach_recorded",
            self.when(floor),
            breach_id=self.next_id("B"),
            severity=self.pick(["minor", "moderate", "severe"]),
            caused_by=self.pick(["us", "partner"]),
            description="A promise broken",
        )

    def repair(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        breach_id = self.pick(sorted(k for k, b in partner.breaches.items() if not b.repaired))
        at = self.when(max(floor, partner.breaches[breach_id].occurred_at))
        self.record(pid, "trust_repaired", at, breach_id=breach_id)

    def stage(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        stage = self.pick(["exploring", "partnership", "paused", "ended"])
        self.record(pid, "stage_changed", self.when(floor), stage=stage)

    def profile(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        self.record(
            pid,
            "profile_updated",
            self.when(floor),
            name=f"{partner.name} (renamed)",
            communities=self.draw(st.lists(st.sampled_from(["rural", "youth"]), max_size=2)),
        )

    def retract(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        version = self.pick(retractable(partner))
        self.record(pid, "entry_retracted", self.when(floor), version=version, reason="mistake")

    def membership(self, pid: UUID, partner: Partner, floor: datetime) -> None:
        # Coalition changes are recorded in the order they happened: on the clock, no going back.
        ledger = self.services.ledger
        self.coalition_changed = max(self.tick(), self.coalition_changed)
        stamp = Stamp(self.coalition_changed, RECORDER)
        if pid in ledger.get_coalition(self.coalition).members:
            ledger.leave_coalition(self.coalition, MemberLeft(partner_id=pid), stamp)
        else:
            ledger.join_coalition(self.coalition, MemberJoined(partner_id=pid), stamp)


def retractable(partner: Partner) -> list[int]:
    """Versions the partner would let us retract: not the registration, not a retraction, not
    already retracted, and nothing still counting that refers to it."""
    return [
        version
        for version in range(2, partner.version + 1)
        if version not in partner.retractions
        and version not in partner.retracted
        and not partner._dependents_of(version)
    ]
