"""The partner aggregate's rules (SPEC §2), with no database.

Each test reads: given these entries on a partner, when this command, then these new events or
this error. Payloads are built from plain dicts with ``model_validate``, as the API builds them
from a request body, so the pydantic limits are exercised the way a caller meets them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pydantic
import pytest

from domain.chained import ChainedAggregate, Stamp
from domain.errors import (
    AlreadyClosed,
    AlreadyRepaired,
    AlreadyRetracted,
    DuplicateId,
    InvalidRetraction,
    StillReferenced,
    UnknownReference,
    ValidationFailed,
)
from domain.hashing import GENESIS
from domain.partner import Partner
from domain.values import (
    AgreementSigned,
    CheckinCadenceAgreed,
    CoalitionFormed,
    CommitmentCancelled,
    CommitmentFulfilled,
    CommitmentMade,
    CommitmentRenegotiated,
    ContactMade,
    EntryRetracted,
    EventData,
    FeedbackReceived,
    MeetingHeld,
    MemberJoined,
    OutcomeShared,
    PartnerKind,
    PartnerRegistered,
    PaymentMade,
    ProfileUpdated,
    Stage,
    StageChanged,
    ThanksExpressed,
    TrustBreachRecorded,
    TrustRepaired,
)

# A fixed moment in the past, so that no test depends on the clock (only the "future" rule does).
AT = datetime(2024, 3, 10, 15, 0, tzinfo=UTC)
DUE = date(2024, 4, 1)
RECORDER = "steward:amara"


# ---- given / when / then ------------------------------------------------------------------


def stamp(at: datetime = AT) -> Stamp:
    return Stamp(occurred_at=at, recorded_by=RECORDER)


def registration(**fields: Any) -> PartnerRegistered:
    return PartnerRegistered.model_validate(
        {"name": "Eastside Tenants Union", "kind": "organization", **fields}
    )


def given(*history: EventData) -> Partner:
    """A registered partner on which each payload has already been recorded."""
    partner = Partner.register(registration(), stamp())
    for data in history:
        partner.execute(data, stamp())
    partner.collect_events()
    return partner


def new_events(partner: Partner) -> list[ChainedAggregate.Event]:
    events = partner.collect_events()
    assert all(isinstance(event, ChainedAggregate.Event) for event in events)
    return [event for event in events if isinstance(event, ChainedAggregate.Event)]


def when(partner: Partner, data: EventData, at: datetime = AT) -> list[ChainedAggregate.Event]:
    partner.execute(data, stamp(at))
    return new_events(partner)


def commitment(commitment_id: str | None = "C-1", **fields: Any) -> CommitmentMade:
    return CommitmentMade.model_validate(
        {
            "commitment_id": commitment_id,
            "owed_by": "us",
            "description": "Pay stipends to listening-session hosts",
            "due_on": DUE.isoformat(),
            "resource": "financial",
            **fields,
        }
    )


def fulfilment(commitment_id: str = "C-1") -> CommitmentFulfilled:
    return CommitmentFulfilled.model_validate({"commitment_id": commitment_id, "note": "paid"})


def renegotiation(commitment_id: str = "C-1", due_on: date = DUE) -> CommitmentRenegotiated:
    return CommitmentRenegotiated.model_validate(
        {"commitment_id": commitment_id, "due_on": (due_on + timedelta(days=14)).isoformat()}
    )


def cancellation(commitment_id: str = "C-1") -> CommitmentCancelled:
    return CommitmentCancelled.model_validate({"commitment_id": commitment_id, "reason": "moot"})


def payment(**fields: Any) -> PaymentMade:
    return PaymentMade.model_validate(
        {"amount": "150.00", "currency": "USD", "purpose": "stipend", **fields}
    )


def thanks(for_commitment_id: str | None = None) -> ThanksExpressed:
    return ThanksExpressed.model_validate({"form": "note", "for_commitment_id": for_commitment_id})


def breach(breach_id: str | None = "B-1") -> TrustBreachRecorded:
    return TrustBreachRecorded.model_validate(
        {
            "breach_id": breach_id,
            "severity": "moderate",
            "caused_by": "us",
            "description": "Stipends paid two months late",
        }
    )


def repair(breach_id: str = "B-1") -> TrustRepaired:
    return TrustRepaired.model_validate({"breach_id": breach_id, "summary": "apologized"})


def feedback(feedback_id: str | None = "F-1") -> FeedbackReceived:
    return FeedbackReceived.model_validate({"feedback_id": feedback_id, "summary": "too long"})


def outcome(feedback_id: str | None = "F-1") -> OutcomeShared:
    return OutcomeShared.model_validate({"feedback_id": feedback_id, "summary": "shortened it"})


def cadence(every_days: int) -> CheckinCadenceAgreed:
    return CheckinCadenceAgreed.model_validate({"every_days": every_days})


def retraction(version: int) -> EntryRetracted:
    return EntryRetracted.model_validate({"version": version, "reason": "entered by mistake"})


def contact() -> ContactMade:
    return ContactMade.model_validate({"channel": "phone", "direction": "inbound"})


# ---- a new partner ------------------------------------------------------------------------


def test_registering_records_partner_registered_with_its_fields() -> None:
    partner = Partner.register(registration(roles=["speaker"], communities=["Eastside"]), stamp())

    (event,) = new_events(partner)

    assert isinstance(event, Partner.Registered)
    assert event.type == "partner_registered"
    assert event.originator_version == 1
    assert event.data == registration(roles=["speaker"], communities=["Eastside"])
    assert partner.name == "Eastside Tenants Union"
    assert partner.roles == ("speaker",)


def test_a_new_partner_starts_as_a_prospect_with_a_30_day_cadence() -> None:
    partner = Partner.register(registration(), stamp())

    assert partner.stage is Stage.PROSPECT
    assert partner.cadence_days == 30


# ---- the common fields and the hash chain (SPEC §5) -------------------------------------


def test_every_event_carries_occurred_at_recorded_at_recorded_by_and_hashes() -> None:
    partner = given()

    (event,) = when(partner, contact(), at=AT + timedelta(hours=1))

    assert event.occurred_at == AT + timedelta(hours=1)
    assert event.recorded_at == event.timestamp
    assert event.recorded_at.utcoffset() == timedelta(0)
    assert event.recorded_by == RECORDER
    assert len(event.prev_hash) == 64
    assert len(event.hash) == 64


def test_occurred_at_given_with_an_offset_is_kept_as_the_same_instant_in_utc() -> None:
    partner = given()
    in_toronto = datetime(2024, 3, 10, 11, 0, tzinfo=timezone(timedelta(hours=-4)))

    (event,) = when(partner, contact(), at=in_toronto)

    assert event.occurred_at == datetime(2024, 3, 10, 15, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_the_first_event_chains_from_64_zeros() -> None:
    partner = Partner.register(registration(), stamp())

    (event,) = new_events(partner)

    assert event.prev_hash == "0" * 64 == GENESIS


def test_each_event_chains_from_the_hash_of_the_one_before() -> None:
    partner = Partner.register(registration(), stamp())
    partner.execute(contact(), stamp())
    partner.execute(commitment(), stamp())
    partner.execute(fulfilment(), stamp())

    events = new_events(partner)

    assert [e.originator_version for e in events] == [1, 2, 3, 4]
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert len({e.hash for e in events}) == 4


def test_every_hash_is_recomputed_from_the_events_content() -> None:
    partner = Partner.register(registration(), stamp())
    partner.execute(commitment(amount="10.5", currency="USD"), stamp())

    for event in new_events(partner):
        assert event.compute_hash() == event.hash


def test_the_hash_is_the_spec_formula_that_anyone_can_recompute() -> None:
    partner = given()
    registration_hash = partner.last_hash

    (event,) = when(partner, commitment(amount="10.5", currency="USD"))

    # SPEC §5, written out as a partner's auditor would, with the standard library only. The
    # description is personal: the hashed data holds its salted commitment (issue 16).
    assert event.seal is not None
    salt, description = event.seal.disclosed["description"]
    assert description == "Pay stipends to listening-session hosts"
    committed = hashlib.sha256(
        (salt + json.dumps(description, ensure_ascii=False)).encode()
    ).hexdigest()
    document = {
        "stream_id": str(partner.id),
        "version": 2,
        "type": "commitment_made",
        "occurred_at": "2024-03-10T15:00:00.000000Z",
        "recorded_at": event.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "recorded_by": RECORDER,
        "data": {
            "commitment_id": "C-1",
            "owed_by": "us",
            "due_on": "2024-04-01",
            "resource": "financial",
            "amount": "10.50",
            "currency": "USD",
            "coalition_id": None,
            "personal": {"format": 2, "commitments": {"description": committed}},
        },
        "prev_hash": registration_hash,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert event.hash == hashlib.sha256(canonical.encode()).hexdigest()


def test_changing_any_recorded_field_changes_the_hash() -> None:
    partner = given()
    (event,) = when(partner, contact())

    tampered = ContactMade.model_validate({"channel": "phone", "direction": "outbound"})
    object.__setattr__(event, "data", tampered)

    assert event.compute_hash() != event.hash


# ---- occurred_at ----------------------------------------------------------------------------


def test_occurred_at_more_than_five_minutes_in_the_future_is_refused() -> None:
    partner = given()

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(contact(), stamp(datetime.now(UTC) + timedelta(minutes=6)))

    assert [p.field for p in refused.value.problems] == ["occurred_at"]
    assert new_events(partner) == []


def test_occurred_at_four_minutes_ahead_is_accepted_as_clock_skew() -> None:
    partner = given()
    ahead = datetime.now(UTC) + timedelta(minutes=4)

    (event,) = when(partner, contact(), at=ahead)

    assert event.occurred_at == ahead


def test_registering_with_a_future_occurred_at_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        Partner.register(registration(), stamp(datetime.now(UTC) + timedelta(hours=1)))


def test_occurred_at_without_a_timezone_is_refused() -> None:
    partner = given()

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(contact(), stamp(datetime(2024, 3, 10, 15, 0)))

    assert [p.field for p in refused.value.problems] == ["occurred_at"]


# ---- ids ----------------------------------------------------------------------------------

ID_MAKERS: dict[str, Callable[[str | None], EventData]] = {
    "commitment_id": commitment,
    "breach_id": breach,
    "feedback_id": feedback,
}


@pytest.mark.parametrize("id_field", list(ID_MAKERS))
def test_the_server_makes_a_uuid_when_no_id_is_given(id_field: str) -> None:
    partner = given()

    (event,) = when(partner, ID_MAKERS[id_field](None))

    made = getattr(event.data, id_field)
    assert isinstance(made, str)
    assert str(UUID(made)) == made


@pytest.mark.parametrize("id_field", list(ID_MAKERS))
@pytest.mark.parametrize("given_id", ["C-2026-001", "a" * 64, "x.y_z:1-2", "7"])
def test_an_id_given_by_the_caller_is_kept(id_field: str, given_id: str) -> None:
    partner = given()

    (event,) = when(partner, ID_MAKERS[id_field](given_id))

    assert getattr(event.data, id_field) == given_id


@pytest.mark.parametrize("id_field", list(ID_MAKERS))
@pytest.mark.parametrize("bad_id", ["", "a" * 65, "C 1", "C/1", "C-1\n", "café", "C#1"])
def test_an_id_outside_the_allowed_pattern_is_refused(id_field: str, bad_id: str) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        ID_MAKERS[id_field](bad_id)

    assert refused.value.errors()[0]["loc"] == (id_field,)


@pytest.mark.parametrize(
    "reference",
    [
        "commitment_fulfilled.commitment_id",
        "payment_made.commitment_id",
        "thanks_expressed.for_commitment_id",
        "outcome_shared.feedback_id",
    ],
)
def test_an_id_pattern_applies_to_references_too(reference: str) -> None:
    makers: dict[str, Any] = {
        "commitment_fulfilled.commitment_id": fulfilment,
        "payment_made.commitment_id": lambda bad: payment(commitment_id=bad),
        "thanks_expressed.for_commitment_id": thanks,
        "outcome_shared.feedback_id": outcome,
    }

    with pytest.raises(pydantic.ValidationError) as refused:
        makers[reference]("not an id!")

    assert refused.value.errors()[0]["loc"] == (reference.split(".")[1],)


@pytest.mark.parametrize("id_field", list(ID_MAKERS))
def test_reusing_an_id_within_a_partner_is_a_conflict(id_field: str) -> None:
    partner = given(ID_MAKERS[id_field]("X-1"))

    with pytest.raises(DuplicateId):
        partner.execute(ID_MAKERS[id_field]("X-1"), stamp())

    assert new_events(partner) == []


def test_the_id_of_a_retracted_commitment_is_not_reused() -> None:
    partner = given(commitment("C-1"), retraction(2))

    with pytest.raises(DuplicateId):
        partner.execute(commitment("C-1"), stamp())


def test_another_partner_may_use_the_same_id() -> None:
    given(commitment("C-1"))
    other = given()

    (event,) = when(other, commitment("C-1"))

    assert isinstance(event.data, CommitmentMade)
    assert event.data.commitment_id == "C-1"


# ---- references to commitments, breaches and feedback -------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        fulfilment("C-404"),
        renegotiation("C-404"),
        cancellation("C-404"),
        payment(commitment_id="C-404"),
        thanks("C-404"),
        repair("B-404"),
        outcome("F-404"),
    ],
    ids=lambda data: data.TYPE,
)
def test_naming_an_unknown_commitment_breach_or_feedback_is_refused(command: EventData) -> None:
    partner = given(commitment("C-1"), breach("B-1"), feedback("F-1"))

    with pytest.raises(UnknownReference):
        partner.execute(command, stamp())

    assert new_events(partner) == []


@pytest.mark.parametrize(
    "command",
    [payment(commitment_id=None), thanks(None), outcome(None)],
    ids=lambda data: data.TYPE,
)
def test_payments_thanks_and_outcomes_need_not_name_anything(command: EventData) -> None:
    partner = given()

    (event,) = when(partner, command)

    assert event.data == command


@pytest.mark.parametrize(
    "command",
    [payment(commitment_id="C-1"), thanks("C-1")],
    ids=lambda data: data.TYPE,
)
def test_payments_and_thanks_may_name_a_commitment_on_record(command: EventData) -> None:
    partner = given(commitment("C-1"))

    (event,) = when(partner, command)

    assert event.type == command.TYPE


def test_a_commitment_named_by_another_partner_is_unknown_here() -> None:
    given(commitment("C-1"))
    other = given()

    with pytest.raises(UnknownReference):
        other.execute(fulfilment("C-1"), stamp())


# ---- commitments --------------------------------------------------------------------------


def test_making_a_commitment_records_it_with_its_fields() -> None:
    partner = given()

    (event,) = when(partner, commitment("C-1"))

    assert event.type == "commitment_made"
    assert event.data == commitment("C-1")
    assert partner.commitments["C-1"].due_on == DUE
    assert partner.commitments["C-1"].closed is None


def test_fulfilling_an_open_commitment_closes_it() -> None:
    partner = given(commitment("C-1"))

    (event,) = when(partner, fulfilment("C-1"))

    assert event.type == "commitment_fulfilled"
    assert event.data == fulfilment("C-1")
    assert partner.commitments["C-1"].closed == "fulfilled"


def test_cancelling_an_open_commitment_closes_it() -> None:
    partner = given(commitment("C-1"))

    (event,) = when(partner, cancellation("C-1"))

    assert event.type == "commitment_cancelled"
    assert partner.commitments["C-1"].closed == "cancelled"


def test_renegotiating_an_open_commitment_moves_its_due_date() -> None:
    partner = given(commitment("C-1"))

    (event,) = when(partner, renegotiation("C-1"))

    assert event.type == "commitment_renegotiated"
    assert partner.commitments["C-1"].due_on == DUE + timedelta(days=14)
    assert partner.commitments["C-1"].closed is None


@pytest.mark.parametrize(
    "closing", [fulfilment("C-1"), cancellation("C-1")], ids=["fulfilled", "cancelled"]
)
@pytest.mark.parametrize(
    "command",
    [fulfilment("C-1"), renegotiation("C-1"), cancellation("C-1")],
    ids=["fulfilling", "renegotiating", "cancelling"],
)
def test_fulfilling_renegotiating_or_cancelling_a_closed_commitment_is_a_conflict(
    closing: EventData, command: EventData
) -> None:
    partner = given(commitment("C-1"), closing)

    with pytest.raises(AlreadyClosed):
        partner.execute(command, stamp())

    assert new_events(partner) == []


def test_a_due_date_before_the_day_the_commitment_was_made_is_refused() -> None:
    partner = given()
    late_evening = datetime(2024, 3, 10, 23, 59, tzinfo=UTC)

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(commitment(due_on="2024-03-09"), stamp(late_evening))

    assert [p.field for p in refused.value.problems] == ["due_on"]


def test_a_due_date_on_the_day_the_commitment_was_made_is_accepted() -> None:
    partner = given()
    late_evening = datetime(2024, 3, 10, 23, 59, tzinfo=UTC)

    (event,) = when(partner, commitment(due_on="2024-03-10"), at=late_evening)

    assert isinstance(event.data, CommitmentMade)
    assert event.data.due_on == date(2024, 3, 10)


def test_renegotiating_to_before_the_day_the_commitment_was_made_is_refused() -> None:
    partner = given(commitment("C-1"))
    too_early = CommitmentRenegotiated.model_validate(
        {"commitment_id": "C-1", "due_on": "2024-03-09"}
    )

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(too_early, stamp())

    assert [p.field for p in refused.value.problems] == ["due_on"]


@pytest.mark.parametrize(
    "command",
    [fulfilment("C-1"), renegotiation("C-1"), cancellation("C-1")],
    ids=lambda data: data.TYPE,
)
def test_a_commitment_cannot_be_closed_or_moved_before_it_was_made(command: EventData) -> None:
    partner = given(commitment("C-1"))

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(command, stamp(AT - timedelta(days=1)))

    assert [p.field for p in refused.value.problems] == ["occurred_at"]


# ---- money --------------------------------------------------------------------------------


def priced_commitment(amount: str | Decimal, currency: str) -> CommitmentMade:
    return commitment(amount=amount, currency=currency)


def paid(amount: str | Decimal, currency: str) -> PaymentMade:
    return payment(amount=amount, currency=currency)


MONEY_COMMANDS = [
    pytest.param(paid, id="payment"),
    pytest.param(priced_commitment, id="commitment"),
]


@pytest.mark.parametrize("make", MONEY_COMMANDS)
# A sign is refused by the grammar (tests/domain/test_input_grammar.py); a negative Decimal can
# still come from code, and the rule refuses it.
@pytest.mark.parametrize("amount", ["0", "0.00", Decimal("-1"), Decimal("-0.01")])
def test_an_amount_at_or_below_zero_is_refused(make: Any, amount: str | Decimal) -> None:
    partner = given()

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(make(amount, "USD"), stamp())

    assert [p.field for p in refused.value.problems] == ["amount"]


@pytest.mark.parametrize("make", MONEY_COMMANDS)
@pytest.mark.parametrize("currency", ["XYZ", "usd", "US$"])
def test_a_currency_that_is_not_iso_4217_is_refused(make: Any, currency: str) -> None:
    partner = given()

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(make("10.00", currency), stamp())

    assert [p.field for p in refused.value.problems] == ["currency"]


@pytest.mark.parametrize("make", MONEY_COMMANDS)
@pytest.mark.parametrize("currency", ["US", "USDX"])
def test_a_currency_code_of_the_wrong_length_is_refused_by_its_shape(
    make: Any, currency: str
) -> None:
    with pytest.raises(pydantic.ValidationError):
        make("10.00", currency)


@pytest.mark.parametrize("make", MONEY_COMMANDS)
@pytest.mark.parametrize(
    ("amount", "currency"), [("10.001", "USD"), ("1.5", "JPY"), ("1.0001", "KWD")]
)
def test_more_decimal_places_than_the_currency_has_are_refused(
    make: Any, amount: str, currency: str
) -> None:
    partner = given()

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(make(amount, currency), stamp())

    assert [p.field for p in refused.value.problems] == ["amount"]


@pytest.mark.parametrize("make", MONEY_COMMANDS)
@pytest.mark.parametrize(
    ("amount", "currency", "stored"),
    [
        ("10.5", "USD", "10.50"),
        ("7", "USD", "7.00"),
        ("10.01", "USD", "10.01"),
        ("10.500", "USD", "10.50"),
        ("1000", "JPY", "1000"),
        ("1000.0", "JPY", "1000"),
        ("1.5", "KWD", "1.500"),
        ("1.001", "KWD", "1.001"),
    ],
)
def test_amounts_are_stored_with_exactly_the_currencys_decimal_places(
    make: Any, amount: str, currency: str, stored: str
) -> None:
    partner = given()

    (event,) = when(partner, make(amount, currency))

    assert isinstance(event.data, PaymentMade | CommitmentMade)
    recorded = event.data.amount
    assert type(recorded) is Decimal
    assert str(recorded) == stored
    assert event.data.model_dump(mode="json")["amount"] == stored


@pytest.mark.parametrize(
    ("fields", "missing"),
    [({"amount": "10.00"}, "currency"), ({"currency": "USD"}, "amount")],
)
def test_a_commitment_amount_and_its_currency_come_together(
    fields: dict[str, str], missing: str
) -> None:
    partner = given()

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(commitment(**fields), stamp())

    assert [p.field for p in refused.value.problems] == [missing]


def test_a_commitment_without_money_has_no_amount_or_currency() -> None:
    partner = given()

    (event,) = when(partner, commitment(resource="time"))

    assert isinstance(event.data, CommitmentMade)
    assert (event.data.amount, event.data.currency) == (None, None)


@pytest.mark.parametrize(
    "build",
    [
        lambda: payment(amount=150.0),
        lambda: payment(amount=0.1),
        lambda: commitment(amount=10.5, currency="USD"),
    ],
    ids=["payment", "payment-tenth", "commitment"],
)
def test_money_given_as_a_float_is_refused(build: Any) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        build()

    assert refused.value.errors()[0]["loc"] == ("amount",)


# ---- the shape of payloads ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (ContactMade, {"channel": "pigeon", "direction": "inbound"}, "channel"),
        (ContactMade, {"channel": "email", "direction": "sideways"}, "direction"),
        (MeetingHeld, {"kind": "party", "location": "ours"}, "kind"),
        (PaymentMade, {"amount": "1.00", "currency": "USD", "purpose": "bribe"}, "purpose"),
        (StageChanged, {"stage": "married"}, "stage"),
        (PartnerRegistered, {"name": "X", "kind": "robot"}, "kind"),
        (
            TrustBreachRecorded,
            {"severity": "catastrophic", "caused_by": "us", "description": "x"},
            "severity",
        ),
    ],
)
def test_a_value_outside_its_enum_is_refused(
    model: type[EventData], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        model.model_validate(body)

    assert refused.value.errors()[0]["loc"] == (field,)
    assert refused.value.errors()[0]["type"] == "enum"


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (ContactMade, {"direction": "inbound"}, "channel"),
        (
            CommitmentMade,
            {"owed_by": "us", "due_on": "2024-04-01", "resource": "time"},
            "description",
        ),
        (CommitmentFulfilled, {}, "commitment_id"),
        (PaymentMade, {"currency": "USD", "purpose": "stipend"}, "amount"),
        (EntryRetracted, {"reason": "typo"}, "version"),
        (PartnerRegistered, {"kind": "individual"}, "name"),
    ],
)
def test_a_missing_required_field_is_refused(
    model: type[EventData], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        model.model_validate(body)

    assert refused.value.errors()[0]["loc"] == (field,)
    assert refused.value.errors()[0]["type"] == "missing"


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (ContactMade, {"channel": "email", "direction": "inbound", "mood": "warm"}),
        (PaymentMade, {"amount": "1.00", "currency": "USD", "purpose": "grant", "tax": "0"}),
        (PartnerRegistered, {"name": "X", "kind": "individual", "preferences": {"font": "big"}}),
    ],
)
def test_an_unknown_field_is_refused(model: type[EventData], body: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        model.model_validate(body)

    assert refused.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (ContactMade, {"channel": "email", "direction": "inbound"}, "summary"),
        (CommitmentFulfilled, {"commitment_id": "C-1"}, "note"),
        (EntryRetracted, {"version": 2}, "reason"),
        (TrustBreachRecorded, {"severity": "minor", "caused_by": "us"}, "description"),
    ],
)
def test_text_longer_than_10000_characters_is_refused(
    model: type[EventData], body: dict[str, Any], field: str
) -> None:
    model.model_validate({**body, field: "x" * 10_000})

    with pytest.raises(pydantic.ValidationError) as refused:
        model.model_validate({**body, field: "x" * 10_001})

    assert refused.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    ("model", "body", "path"),
    [
        (MeetingHeld, {"kind": "planning", "location": "ours"}, ("attendees",)),
        (PartnerRegistered, {"name": "X", "kind": "organization"}, ("roles",)),
        (PartnerRegistered, {"name": "X", "kind": "organization"}, ("communities",)),
        (CoalitionFormed, {"name": "Eastside Housing Table"}, ("agreed_measures",)),
    ],
)
def test_lists_longer_than_100_items_are_refused(
    model: type[EventData], body: dict[str, Any], path: tuple[str, ...]
) -> None:
    (field,) = path
    model.model_validate({**body, field: ["item"] * 100})

    with pytest.raises(pydantic.ValidationError) as refused:
        model.model_validate({**body, field: ["item"] * 101})

    assert refused.value.errors()[0]["loc"] == path


def test_preference_lists_longer_than_100_items_are_refused() -> None:
    registration(preferences={"accessibility": ["captions"] * 100})

    with pytest.raises(pydantic.ValidationError) as refused:
        registration(preferences={"accessibility": ["captions"] * 101})

    assert refused.value.errors()[0]["loc"] == ("preferences", "accessibility")


@pytest.mark.parametrize("every_days", [0, 367, -30])
def test_a_cadence_outside_1_to_366_days_is_refused(every_days: int) -> None:
    with pytest.raises(pydantic.ValidationError):
        cadence(every_days)


@pytest.mark.parametrize("every_days", [1, 366])
def test_a_cadence_of_1_to_366_days_is_agreed(every_days: int) -> None:
    partner = given()

    when(partner, cadence(every_days))

    assert partner.cadence_days == every_days


def test_a_partner_records_neither_registrations_nor_coalition_events() -> None:
    partner = given()

    for data in (registration(), MemberJoined(partner_id=uuid4())):
        with pytest.raises(ValidationFailed) as refused:
            partner.execute(data, stamp())
        assert [p.field for p in refused.value.problems] == ["type"]


# ---- profile, stage and agreements --------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"region": None}, {"name": None, "roles": None}])
def test_a_profile_update_naming_no_field_is_refused(body: dict[str, Any]) -> None:
    partner = given()

    with pytest.raises(ValidationFailed):
        partner.execute(ProfileUpdated.model_validate(body), stamp())


def test_a_profile_update_changes_only_the_fields_it_names() -> None:
    partner = given()

    when(partner, ProfileUpdated.model_validate({"region": "North", "roles": ["speaker"]}))

    assert partner.region == "North"
    assert partner.roles == ("speaker",)
    assert partner.name == "Eastside Tenants Union"
    assert partner.kind is PartnerKind.ORGANIZATION


def test_a_partner_cannot_refer_itself() -> None:
    partner = given()

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(ProfileUpdated(referred_by=partner.id), stamp())

    assert [p.field for p in refused.value.problems] == ["referred_by"]


def test_changing_stage_moves_the_partner_to_that_stage() -> None:
    partner = given()

    (event,) = when(partner, StageChanged.model_validate({"stage": "exploring"}))

    assert event.type == "stage_changed"
    assert partner.stage is Stage.EXPLORING


def test_an_agreement_that_ends_before_it_takes_effect_is_refused() -> None:
    partner = given()
    backwards = AgreementSigned.model_validate(
        {"title": "MOU", "kind": "mou", "effective_on": "2024-03-01", "ends_on": "2024-02-29"}
    )

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(backwards, stamp())

    assert [p.field for p in refused.value.problems] == ["ends_on"]


@pytest.mark.parametrize("ends_on", [None, "2024-03-01", "2025-02-28"])
def test_an_agreement_ending_on_or_after_its_start_or_open_ended_is_signed(
    ends_on: str | None,
) -> None:
    partner = given()
    agreement = AgreementSigned.model_validate(
        {"title": "MOU", "kind": "mou", "effective_on": "2024-03-01", "ends_on": ends_on}
    )

    (event,) = when(partner, agreement)

    assert event.data == agreement


# ---- breaches -----------------------------------------------------------------------------


def test_repairing_a_breach_marks_it_repaired() -> None:
    partner = given(breach("B-1"))

    (event,) = when(partner, repair("B-1"))

    assert event.type == "trust_repaired"
    assert partner.breaches["B-1"].repaired


def test_repairing_a_breach_twice_is_a_conflict() -> None:
    partner = given(breach("B-1"), repair("B-1"))

    with pytest.raises(AlreadyRepaired):
        partner.execute(repair("B-1"), stamp())

    assert new_events(partner) == []


def test_a_breach_cannot_be_repaired_before_it_happened() -> None:
    partner = given(breach("B-1"))

    with pytest.raises(ValidationFailed) as refused:
        partner.execute(repair("B-1"), stamp(AT - timedelta(minutes=1)))

    assert [p.field for p in refused.value.problems] == ["occurred_at"]


# ---- retractions --------------------------------------------------------------------------


def test_retracting_an_entry_records_entry_retracted_and_keeps_the_entry() -> None:
    partner = given(contact())  # version 2

    (event,) = when(partner, retraction(2))

    assert event.type == "entry_retracted"
    assert event.data == retraction(2)
    assert isinstance(partner.entries[2].data, ContactMade)
    assert partner.retracted == {2}


def test_retracting_a_retraction_is_invalid() -> None:
    partner = given(contact(), retraction(2))  # the retraction is version 3

    with pytest.raises(InvalidRetraction):
        partner.execute(retraction(3), stamp())


def test_retracting_the_registration_is_invalid() -> None:
    partner = given()

    with pytest.raises(InvalidRetraction):
        partner.execute(retraction(1), stamp())


@pytest.mark.parametrize("version", [3, 4, 1_000])
def test_retracting_an_unknown_version_is_invalid(version: int) -> None:
    partner = given(contact())  # versions 1 and 2

    with pytest.raises(InvalidRetraction):
        partner.execute(retraction(version), stamp())


def test_a_retraction_names_a_version_of_at_least_1() -> None:
    with pytest.raises(pydantic.ValidationError):
        retraction(0)


def test_retracting_twice_is_a_conflict() -> None:
    partner = given(contact(), retraction(2))

    with pytest.raises(AlreadyRetracted):
        partner.execute(retraction(2), stamp())

    assert new_events(partner) == []


@pytest.mark.parametrize(
    ("history", "referred"),
    [
        ([commitment("C-1"), fulfilment("C-1")], 2),
        ([commitment("C-1"), renegotiation("C-1")], 2),
        ([commitment("C-1"), cancellation("C-1")], 2),
        ([commitment("C-1"), payment(commitment_id="C-1")], 2),
        ([commitment("C-1"), thanks("C-1")], 2),
        ([breach("B-1"), repair("B-1")], 2),
        ([feedback("F-1"), outcome("F-1")], 2),
    ],
    ids=["fulfilled", "renegotiated", "cancelled", "paid", "thanked", "repaired", "answered"],
)
def test_retracting_an_entry_that_later_entries_refer_to_is_a_conflict(
    history: list[EventData], referred: int
) -> None:
    partner = given(*history)

    with pytest.raises(StillReferenced):
        partner.execute(retraction(referred), stamp())

    assert new_events(partner) == []


def test_once_what_refers_to_it_is_retracted_a_commitment_can_be_retracted() -> None:
    partner = given(commitment("C-1"), payment(commitment_id="C-1"), retraction(3))

    (event,) = when(partner, retraction(2))

    assert event.type == "entry_retracted"
    assert "C-1" not in partner.commitments


def test_an_unrelated_outcome_does_not_pin_feedback() -> None:
    partner = given(feedback("F-1"), outcome(None))

    (event,) = when(partner, retraction(2))

    assert event.type == "entry_retracted"
    assert "F-1" not in partner.feedback


def test_a_retracted_fulfilment_reopens_the_commitment() -> None:
    partner = given(commitment("C-1"), fulfilment("C-1"))

    when(partner, retraction(3))

    assert partner.commitments["C-1"].closed is None
    (event,) = when(partner, fulfilment("C-1"))
    assert event.type == "commitment_fulfilled"
    assert partner.commitments["C-1"].closed == "fulfilled"


def test_a_retracted_renegotiation_restores_the_earlier_due_date() -> None:
    partner = given(commitment("C-1"), renegotiation("C-1"))

    when(partner, retraction(3))

    assert partner.commitments["C-1"].due_on == DUE


def test_a_retracted_cadence_agreement_restores_the_previous_cadence() -> None:
    partner = given(cadence(14), cadence(7))  # versions 2 and 3

    when(partner, retraction(3))
    assert partner.cadence_days == 14

    when(partner, retraction(2))
    assert partner.cadence_days == 30


def test_a_retracted_repair_reopens_the_breach() -> None:
    partner = given(breach("B-1"), repair("B-1"))

    when(partner, retraction(3))

    assert not partner.breaches["B-1"].repaired
    (event,) = when(partner, repair("B-1"))
    assert event.type == "trust_repaired"


def test_a_retracted_commitment_can_no_longer_be_referred_to() -> None:
    partner = given(commitment("C-1"), retraction(2))

    with pytest.raises(UnknownReference):
        partner.execute(fulfilment("C-1"), stamp())


def test_a_retraction_keeps_the_hash_chain_going() -> None:
    partner = given(contact())
    before = partner.last_hash

    (event,) = when(partner, retraction(2))

    assert event.prev_hash == before
    assert partner.last_hash == event.hash
