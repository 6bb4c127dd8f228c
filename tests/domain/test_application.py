"""The Partnerships application on a real store: SQLite and PostgreSQL alike (``ledger``)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError

from domain import application
from domain.application import Partnerships, Recorded
from domain.chained import Stamp
from domain.coalition import Coalition
from domain.errors import (
    Busy,
    CoalitionNotFound,
    PartnerNotFound,
    UnknownReference,
    ValidationFailed,
    VersionConflict,
)
from domain.hashing import GENESIS
from domain.partner import Partner
from domain.values import (
    CoalitionFormed,
    CommitmentFulfilled,
    CommitmentMade,
    ContactMade,
    EntryRetracted,
    MemberJoined,
    MemberLeft,
    PartnerRegistered,
)

AT = datetime(2024, 3, 10, 15, 0, tzinfo=UTC)
STAMP = Stamp(occurred_at=AT, recorded_by="steward:amara")


def registration(name: str = "Eastside Tenants Union") -> PartnerRegistered:
    return PartnerRegistered.model_validate({"name": name, "kind": "organization"})


def contact(summary: str = "") -> ContactMade:
    return ContactMade.model_validate(
        {"channel": "phone", "direction": "inbound", "summary": summary}
    )


def commitment(**fields: object) -> CommitmentMade:
    return CommitmentMade.model_validate(
        {
            "commitment_id": "C-1",
            "owed_by": "us",
            "description": "Pay stipends to listening-session hosts",
            "due_on": "2024-04-01",
            "resource": "financial",
            "amount": "150",
            "currency": "USD",
            **fields,
        }
    )


def coalition_formed() -> CoalitionFormed:
    return CoalitionFormed.model_validate({"name": "Eastside Housing Table"})


def registered(ledger: Partnerships, name: str = "Eastside Tenants Union") -> UUID:
    return ledger.register_partner(registration(name), STAMP).stream_id


# ---- writing ------------------------------------------------------------------------------


def test_registering_and_recording_return_where_each_event_landed(ledger: Partnerships) -> None:
    registered_ = ledger.register_partner(registration(), STAMP)
    recorded = ledger.record(registered_.stream_id, commitment(), STAMP)

    assert isinstance(registered_, Recorded)
    assert (registered_.version, registered_.type) == (1, "partner_registered")
    assert (recorded.stream_id, recorded.version) == (registered_.stream_id, 2)
    assert recorded.type == "commitment_made"
    assert recorded.position > registered_.position
    assert recorded.position == ledger.last_position()
    assert recorded.data["amount"] == "150.00"
    events = [ledger.decode(n) for n in ledger.notifications()]
    assert [(e.originator_version, e.hash) for e in events] == [
        (1, registered_.hash),
        (2, recorded.hash),
    ]
    assert events[0].prev_hash == GENESIS
    assert events[1].prev_hash == registered_.hash


def test_a_stored_partner_loads_with_its_state(ledger: Partnerships) -> None:
    partner_id = registered(ledger)
    ledger.record(partner_id, commitment(), STAMP)

    partner = ledger.get_partner(partner_id)

    assert partner.name == "Eastside Tenants Union"
    assert partner.version == 2
    assert partner.commitments["C-1"].closed is None


def test_a_retraction_is_refolded_when_the_partner_is_loaded_again(ledger: Partnerships) -> None:
    partner_id = registered(ledger)
    ledger.record(partner_id, commitment(), STAMP)
    ledger.record(partner_id, CommitmentFulfilled(commitment_id="C-1"), STAMP)
    ledger.record(partner_id, EntryRetracted(version=3, reason="not yet paid"), STAMP)

    partner = ledger.get_partner(partner_id)

    assert partner.retracted == {3}
    assert partner.commitments["C-1"].closed is None
    assert ledger.record(partner_id, CommitmentFulfilled(commitment_id="C-1"), STAMP).version == 5


def test_recording_for_an_unknown_partner_is_not_found(ledger: Partnerships) -> None:
    missing = uuid4()

    with pytest.raises(PartnerNotFound) as refused:
        ledger.record(missing, contact(), STAMP)

    assert refused.value.partner_id == missing


def test_a_coalition_id_is_not_a_partner(ledger: Partnerships) -> None:
    coalition_id = ledger.form_coalition(coalition_formed(), STAMP).stream_id

    with pytest.raises(PartnerNotFound):
        ledger.get_partner(coalition_id)


def test_a_refused_command_records_nothing(ledger: Partnerships) -> None:
    partner_id = registered(ledger)
    before = ledger.last_position()

    with pytest.raises(UnknownReference):
        ledger.record(partner_id, CommitmentFulfilled(commitment_id="C-404"), STAMP)

    assert ledger.last_position() == before
    assert ledger.get_partner(partner_id).version == 1


# ---- expected_version and lost races ------------------------------------------------------


def test_the_current_expected_version_is_accepted(ledger: Partnerships) -> None:
    partner_id = registered(ledger)

    recorded = ledger.record(partner_id, contact(), STAMP, expected_version=1)

    assert recorded.version == 2


def test_a_stale_expected_version_is_a_conflict_naming_the_current_version(
    ledger: Partnerships,
) -> None:
    partner_id = registered(ledger)
    ledger.record(partner_id, contact("first"), STAMP)

    with pytest.raises(VersionConflict) as refused:
        ledger.record(partner_id, contact("second"), STAMP, expected_version=1)

    assert refused.value.expected_version == 1
    assert refused.value.current_version == 2
    assert ledger.get_partner(partner_id).version == 2


def lose_the_first_race(
    ledger: Partnerships, monkeypatch: pytest.MonkeyPatch, partner_id: UUID
) -> None:
    """The next load of the partner returns a copy that another writer overtakes at once."""
    load = ledger.get_partner
    raced = False

    def load_then_get_overtaken(wanted: UUID, version: int | None = None) -> Partner:
        nonlocal raced
        partner = load(wanted, version)
        if not raced:
            raced = True
            ledger.record(partner_id, contact("the other writer"), STAMP)
        return partner

    monkeypatch.setattr(ledger, "get_partner", load_then_get_overtaken)


def test_a_write_that_loses_a_race_is_retried_on_the_fresh_state(
    ledger: Partnerships, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner_id = registered(ledger)
    lose_the_first_race(ledger, monkeypatch, partner_id)

    recorded = ledger.record(partner_id, contact("ours"), STAMP)

    assert recorded.version == 3
    monkeypatch.undo()
    events = [ledger.decode(n) for n in ledger.notifications()]
    assert [(e.originator_version, e.data) for e in events[1:]] == [
        (2, contact("the other writer")),
        (3, contact("ours")),
    ]
    assert events[2].prev_hash == events[1].hash


def test_with_expected_version_a_lost_race_is_a_conflict(
    ledger: Partnerships, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner_id = registered(ledger)
    lose_the_first_race(ledger, monkeypatch, partner_id)

    with pytest.raises(VersionConflict) as refused:
        ledger.record(partner_id, contact("ours"), STAMP, expected_version=1)

    assert refused.value.current_version == 2
    monkeypatch.undo()
    assert ledger.get_partner(partner_id).version == 2


def overtake_each_save(
    ledger: Partnerships, monkeypatch: pytest.MonkeyPatch, partner_id: UUID, times: int
) -> list[int]:
    """Another writer records a contact on the partner just before each of the next ``times``
    saves, so that each of them loses the race; returns the running count of overtakes."""
    insert = ledger.recorder.insert_events
    overtaken = [0]
    inside = False

    def overtaken_first(stored_events: Any, **kwargs: Any) -> Any:
        nonlocal inside
        if not inside and overtaken[0] < times:
            inside = True
            try:
                ledger.record(partner_id, contact(f"the other writer {overtaken[0]}"), STAMP)
            finally:
                inside = False
            overtaken[0] += 1
        return insert(stored_events, **kwargs)

    monkeypatch.setattr(ledger.recorder, "insert_events", overtaken_first)
    return overtaken


def test_a_write_without_expected_version_is_recorded_however_often_it_loses_the_race(
    ledger: Partnerships, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner_id = registered(ledger)
    overtaken = overtake_each_save(ledger, monkeypatch, partner_id, times=12)

    recorded = ledger.record(partner_id, contact("ours"), STAMP)

    assert overtaken == [12]
    assert recorded.version == 14
    monkeypatch.undo()
    events = [ledger.decode(n) for n in ledger.notifications()]
    assert [e.data for e in events[1:]] == [
        *(contact(f"the other writer {n}") for n in range(12)),
        contact("ours"),
    ]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))


def test_a_write_that_keeps_losing_past_the_deadline_is_busy_not_a_conflict(
    ledger: Partnerships, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner_id = registered(ledger)
    overtake_each_save(ledger, monkeypatch, partner_id, times=1000)
    monkeypatch.setattr(application, "CONTENTION_SECONDS", 0.0)

    with pytest.raises(Busy) as refused:
        ledger.record(partner_id, contact("ours"), STAMP)

    assert refused.value.retry_after >= 1
    monkeypatch.undo()
    recorded = [ledger.decode(n).data for n in ledger.notifications()]
    assert recorded[1:] == [contact(f"the other writer {n}") for n in range(len(recorded) - 1)]


# ---- references beyond the partner's own stream -------------------------------------------


def test_a_commitment_may_name_a_coalition_on_record(ledger: Partnerships) -> None:
    partner_id = registered(ledger)
    coalition_id = ledger.form_coalition(coalition_formed(), STAMP).stream_id

    recorded = ledger.record(partner_id, commitment(coalition_id=str(coalition_id)), STAMP)

    assert recorded.data["coalition_id"] == str(coalition_id)


@pytest.mark.parametrize("names", ["nothing", "a partner"])
def test_a_commitment_naming_no_coalition_on_record_is_refused(
    ledger: Partnerships, names: str
) -> None:
    partner_id = registered(ledger)
    not_a_coalition = uuid4() if names == "nothing" else registered(ledger, "Northside")

    with pytest.raises(ValidationFailed) as refused:
        ledger.record(partner_id, commitment(coalition_id=str(not_a_coalition)), STAMP)

    assert [p.field for p in refused.value.problems] == ["coalition_id"]
    assert ledger.get_partner(partner_id).version == 1


def test_a_partner_referred_by_an_unknown_partner_is_refused(ledger: Partnerships) -> None:
    referral = PartnerRegistered.model_validate(
        {"name": "Northside", "kind": "individual", "referred_by": str(uuid4())}
    )

    with pytest.raises(ValidationFailed) as refused:
        ledger.register_partner(referral, STAMP)

    assert [p.field for p in refused.value.problems] == ["referred_by"]
    assert ledger.last_position() == 0


def test_a_partner_joins_and_leaves_a_coalition(ledger: Partnerships) -> None:
    partner_id = registered(ledger)
    coalition_id = ledger.form_coalition(coalition_formed(), STAMP).stream_id

    joined = ledger.join_coalition(coalition_id, MemberJoined(partner_id=partner_id), STAMP)
    left = ledger.leave_coalition(coalition_id, MemberLeft(partner_id=partner_id), STAMP)

    assert (joined.type, joined.version, left.type, left.version) == (
        "member_joined",
        2,
        "member_left",
        3,
    )
    assert ledger.get_coalition(coalition_id).members == set()


def test_joining_a_coalition_with_an_unknown_partner_is_refused(ledger: Partnerships) -> None:
    coalition_id = ledger.form_coalition(coalition_formed(), STAMP).stream_id

    with pytest.raises(UnknownReference):
        ledger.join_coalition(coalition_id, MemberJoined(partner_id=uuid4()), STAMP)

    assert ledger.get_coalition(coalition_id).version == 1


def test_a_coalition_cannot_join_a_coalition(ledger: Partnerships) -> None:
    coalition_id = ledger.form_coalition(coalition_formed(), STAMP).stream_id
    other_id = ledger.form_coalition(coalition_formed(), STAMP).stream_id

    with pytest.raises(UnknownReference):
        ledger.join_coalition(coalition_id, MemberJoined(partner_id=other_id), STAMP)


def test_joining_an_unknown_coalition_is_not_found(ledger: Partnerships) -> None:
    partner_id = registered(ledger)
    missing = uuid4()

    with pytest.raises(CoalitionNotFound) as refused:
        ledger.join_coalition(missing, MemberJoined(partner_id=partner_id), STAMP)

    assert refused.value.coalition_id == missing


def test_leaving_an_unknown_coalition_is_not_found(ledger: Partnerships) -> None:
    with pytest.raises(CoalitionNotFound):
        ledger.leave_coalition(uuid4(), MemberLeft(partner_id=uuid4()), STAMP)


def test_a_partner_id_is_not_a_coalition(ledger: Partnerships) -> None:
    partner_id = registered(ledger)

    with pytest.raises(CoalitionNotFound):
        ledger.get_coalition(partner_id)


# ---- batches ------------------------------------------------------------------------------


def test_a_batch_saves_every_aggregate_in_it(ledger: Partnerships) -> None:
    first = Partner.register(registration("Eastside"), STAMP)
    second = Partner.register(registration("Northside"), STAMP)
    second.execute(contact(), STAMP)
    coalition = Coalition.form(coalition_formed(), STAMP)

    recorded = ledger.save_batch([first, second, coalition])

    assert [(r.stream_id, r.version) for r in recorded] == [
        (first.id, 1),
        (second.id, 1),
        (second.id, 2),
        (coalition.id, 1),
    ]
    assert [r.position for r in recorded] == sorted({r.position for r in recorded})
    assert ledger.get_partner(second.id).version == 2


def test_a_batch_with_one_conflicting_aggregate_saves_nothing(ledger: Partnerships) -> None:
    existing_id = registered(ledger)
    stale = ledger.get_partner(existing_id)
    ledger.record(existing_id, contact("the other writer"), STAMP)
    stale.execute(contact("ours"), STAMP)  # version 2 again: it will clash
    newcomer = Partner.register(registration("Northside"), STAMP)
    coalition = Coalition.form(coalition_formed(), STAMP)
    before = ledger.last_position()

    with pytest.raises(IntegrityError):
        ledger.save_batch([newcomer, coalition, stale])

    assert ledger.last_position() == before
    assert not ledger.partner_exists(newcomer.id)
    assert not ledger.partner_exists(coalition.id)
    assert ledger.get_partner(existing_id).version == 2
