"""The one serializer (typed mapper over orjson) and the canonical JSON behind every hash.

Property tests: any payload a model can hold comes back from the store with the same types and
values; orjson's sorted compact encoding is byte for byte the ``json.dumps`` call of SPEC §5.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from domain.chained import ChainedAggregate, Stamp
from domain.coalition import Coalition
from domain.hashing import event_hash, format_instant, parse_instant
from domain.money import CURRENCY_DECIMALS
from domain.partner import Partner
from domain.serialization import DATA_MODELS, EVENT_CLASSES, TypedMapper
from domain.values import (
    FROM_STORE,
    ID_PATTERN,
    AgreementKind,
    AgreementSigned,
    Channel,
    CheckinCadenceAgreed,
    CoalitionFormed,
    CommitmentCancelled,
    CommitmentFulfilled,
    CommitmentMade,
    CommitmentRenegotiated,
    ContactMade,
    ContactPerson,
    Contacts,
    Direction,
    EntryRetracted,
    ErasedFields,
    ErasureReason,
    EventData,
    FeedbackReceived,
    Location,
    MeetingHeld,
    MeetingKind,
    MemberJoined,
    MemberLeft,
    OutcomeShared,
    PartnerKind,
    PartnerRegistered,
    PaymentMade,
    PaymentPurpose,
    PersonalDataErased,
    Preferences,
    ProfileUpdated,
    Resource,
    Severity,
    Side,
    Stage,
    StageChanged,
    ThanksExpressed,
    ThanksForm,
    TrustBreachRecorded,
    TrustRepaired,
)

# Property tests assert values, never time: no per-example deadline on a busy CI machine.
untimed = settings(deadline=None)

# ---- strategies for the values payloads hold ----------------------------------------------

# Any text, including non-ASCII, quotes, backslashes and control characters.
texts = st.text(max_size=40)
required_texts = texts.filter(lambda s: s.strip() != "").map(str.strip)
names = st.text(max_size=60).filter(lambda s: s.strip() != "").map(str.strip)
text_lists = st.lists(texts, max_size=4).map(tuple)
ids = st.from_regex(ID_PATTERN, fullmatch=True)
currencies = st.sampled_from(sorted(CURRENCY_DECIMALS))
# Payload models hold any finite decimal; the rules about money live in the aggregate.
money = st.decimals(allow_nan=False, allow_infinity=False)
instants = st.datetimes(timezones=st.just(UTC))
hashes = st.text("0123456789abcdef", min_size=64, max_size=64)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def one_of_enum(enum: type[Enum]) -> st.SearchStrategy[Any]:
    return st.sampled_from(list(enum))


def as_stored(model: type[BaseModel], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Payloads as the store may hold them, read back the way the mapper reads them: text with
    control characters (recorded before the door refused them) must come back unchanged too."""
    return st.fixed_dictionaries(fields).map(
        lambda given: model.model_validate(given, context=FROM_STORE)
    )


preferences = as_stored(
    Preferences,
    channels=st.lists(one_of_enum(Channel), max_size=3).map(tuple),
    language=optional(st.text(max_size=20)),
    accessibility=text_lists,
    gratitude=text_lists,
)

registration_fields: dict[str, st.SearchStrategy[Any]] = {
    "name": names,
    "kind": one_of_enum(PartnerKind),
    "roles": text_lists,
    "communities": text_lists,
    "region": optional(texts),
    "referred_by": optional(st.uuids()),
    "preferences": preferences,
    # Absent from events recorded before contacts existed (None: left out of the data).
    "contacts": optional(
        as_stored(
            Contacts,
            emails=text_lists,
            phones=text_lists,
            address=optional(texts),
            people=st.lists(
                as_stored(
                    ContactPerson,
                    name=names,
                    role=optional(texts),
                    email=optional(texts),
                    phone=optional(texts),
                ),
                max_size=2,
            ).map(tuple),
        )
    ),
}

PAYLOADS: dict[str, st.SearchStrategy[EventData]] = {
    "partner_registered": as_stored(PartnerRegistered, **registration_fields),
    # A profile update names any subset of the registration fields.
    "profile_updated": st.fixed_dictionaries(
        {}, optional={name: optional(s) for name, s in registration_fields.items()}
    ).map(lambda d: ProfileUpdated.model_validate(d, context=FROM_STORE)),
    "contact_made": as_stored(
        ContactMade, channel=one_of_enum(Channel), direction=one_of_enum(Direction), summary=texts
    ),
    "meeting_held": as_stored(
        MeetingHeld,
        kind=one_of_enum(MeetingKind),
        location=one_of_enum(Location),
        summary=texts,
        attendees=text_lists,
    ),
    "checkin_cadence_agreed": as_stored(
        CheckinCadenceAgreed, every_days=st.integers(min_value=1, max_value=366)
    ),
    "commitment_made": as_stored(
        CommitmentMade,
        commitment_id=optional(ids),
        owed_by=one_of_enum(Side),
        description=required_texts,
        due_on=st.dates(),
        resource=one_of_enum(Resource),
        amount=optional(money),
        currency=optional(currencies),
        coalition_id=optional(st.uuids()),
    ),
    "commitment_fulfilled": as_stored(CommitmentFulfilled, commitment_id=ids, note=texts),
    "commitment_renegotiated": as_stored(
        CommitmentRenegotiated, commitment_id=ids, due_on=st.dates(), note=texts
    ),
    "commitment_cancelled": as_stored(CommitmentCancelled, commitment_id=ids, reason=texts),
    "payment_made": as_stored(
        PaymentMade,
        amount=money,
        currency=currencies,
        purpose=one_of_enum(PaymentPurpose),
        commitment_id=optional(ids),
    ),
    "thanks_expressed": as_stored(
        ThanksExpressed,
        form=one_of_enum(ThanksForm),
        for_commitment_id=optional(ids),
        note=texts,
    ),
    "feedback_received": as_stored(FeedbackReceived, feedback_id=optional(ids), summary=texts),
    "outcome_shared": as_stored(OutcomeShared, summary=texts, feedback_id=optional(ids)),
    "trust_breach_recorded": as_stored(
        TrustBreachRecorded,
        breach_id=optional(ids),
        severity=one_of_enum(Severity),
        caused_by=one_of_enum(Side),
        description=required_texts,
    ),
    "trust_repaired": as_stored(TrustRepaired, breach_id=ids, summary=texts),
    "stage_changed": as_stored(StageChanged, stage=one_of_enum(Stage), reason=texts),
    "agreement_signed": as_stored(
        AgreementSigned,
        title=required_texts,
        kind=one_of_enum(AgreementKind),
        effective_on=st.dates(),
        ends_on=optional(st.dates()),
    ),
    "entry_retracted": as_stored(
        EntryRetracted, version=st.integers(min_value=1, max_value=2**63 - 1), reason=required_texts
    ),
    "coalition_formed": as_stored(
        CoalitionFormed, name=names, shared_vision=texts, agreed_measures=text_lists
    ),
    "member_joined": as_stored(MemberJoined, partner_id=st.uuids()),
    "member_left": as_stored(MemberLeft, partner_id=st.uuids(), reason=texts),
    "personal_data_erased": as_stored(
        PersonalDataErased,
        reason=st.sampled_from(ErasureReason),
        fields=st.lists(
            st.builds(
                ErasedFields,
                stream_id=st.uuids(),
                version=st.integers(min_value=1, max_value=2**31),
                fields=st.lists(ids, max_size=3).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
    ),
}


@st.composite
def stored_events(draw: st.DrawFn) -> ChainedAggregate.Event:
    """Any event of any type, with random common fields around a random valid payload."""
    event_type = draw(st.sampled_from(sorted(EVENT_CLASSES)))
    event_class = EVENT_CLASSES[event_type]
    fields: dict[str, Any] = {
        "originator_id": draw(st.uuids()),
        "originator_version": draw(st.integers(min_value=1, max_value=2**31)),
        "timestamp": draw(instants),
        "occurred_at": draw(instants),
        "recorded_by": draw(texts),
        "prev_hash": draw(hashes),
        "hash": draw(hashes),
        "data": draw(PAYLOADS[event_type]),
        "seal": None,  # format 1: the data hashed as it is (format 2 is tests/domain/test_personal)
    }
    if issubclass(event_class, Aggregate.Created):
        fields["originator_topic"] = get_topic(_aggregate_of(event_type))
    return event_class(**fields)


def _aggregate_of(event_type: str) -> type[ChainedAggregate]:
    return (
        Coalition if event_type in {"coalition_formed", "member_joined", "member_left"} else Partner
    )


# ---- exact comparison: same types and same values, not just equal ones ---------------------


def assert_identical(restored: Any, original: Any, where: str = "data") -> None:
    """Equal, and of the same type all the way down (Decimal("1.0") is not Decimal("1.00"))."""
    assert type(restored) is type(original), f"{where}: {type(restored)} != {type(original)}"
    if isinstance(original, BaseModel):
        for name in type(original).model_fields:
            assert_identical(getattr(restored, name), getattr(original, name), f"{where}.{name}")
    elif isinstance(original, tuple):
        assert len(restored) == len(original), where
        for index, (r, o) in enumerate(zip(restored, original, strict=True)):
            assert_identical(r, o, f"{where}[{index}]")
    elif isinstance(original, Decimal):
        assert restored.as_tuple() == original.as_tuple(), f"{where}: {restored} != {original}"
    elif isinstance(original, datetime):
        assert restored == original, where
        assert restored.utcoffset() == original.utcoffset(), where
    else:
        assert restored == original, f"{where}: {restored!r} != {original!r}"


# ---- round trips through the mapper -------------------------------------------------------


def test_every_payload_model_has_a_strategy() -> None:
    assert set(PAYLOADS) == set(DATA_MODELS)


@pytest.mark.parametrize("event_type", sorted(DATA_MODELS))
def test_each_strategy_makes_payloads_of_its_model(event_type: str) -> None:
    @untimed
    @given(PAYLOADS[event_type])
    def makes_its_model(data: EventData) -> None:
        assert type(data) is DATA_MODELS[event_type]

    makes_its_model()


@untimed
@given(stored_events())
def test_every_event_comes_back_from_the_store_unchanged(event: ChainedAggregate.Event) -> None:
    mapper = TypedMapper()

    restored = mapper.to_domain_event(mapper.to_stored_event(event))

    assert type(restored) is type(event)
    assert restored.originator_id == event.originator_id
    assert restored.originator_version == event.originator_version
    assert_identical(restored.data, event.data)
    assert_identical(restored.occurred_at, event.occurred_at, "occurred_at")
    assert_identical(restored.timestamp, event.timestamp, "timestamp")
    assert restored.recorded_by == event.recorded_by
    assert restored.prev_hash == event.prev_hash
    assert restored.hash == event.hash
    assert restored.compute_hash() == event.compute_hash()


@untimed
@given(stored_events())
def test_a_stored_event_is_plain_json_with_the_public_data(event: ChainedAggregate.Event) -> None:
    stored = TypedMapper().to_stored_event(event)

    state = json.loads(stored.state)

    assert state["data"] == json.loads(event.data.model_dump_json())
    assert state["occurred_at"] == format_instant(event.occurred_at)
    assert state["recorded_at"] == format_instant(event.timestamp)
    assert stored.topic == get_topic(type(event))


@untimed
@given(instants)
def test_instants_are_written_as_rfc_3339_utc_and_read_back(moment: datetime) -> None:
    text = format_instant(moment)

    assert len(text) == len("2026-01-05T15:00:00.000000Z")
    assert text.endswith("Z")
    assert parse_instant(text) == moment


def eastside() -> Partner:
    return Partner.register(
        PartnerRegistered.model_validate({"name": "Eastside", "kind": "organization"}),
        Stamp(occurred_at=datetime(2024, 3, 10, tzinfo=UTC), recorded_by="cli:amara"),
    )


def test_a_recorded_partner_event_survives_the_store() -> None:
    partner = eastside()
    partner.execute(
        CommitmentMade.model_validate(
            {
                "owed_by": "us",
                "description": "Stipends",
                "due_on": "2024-04-01",
                "resource": "financial",
                "amount": "10.5",
                "currency": "USD",
            }
        ),
        Stamp(occurred_at=datetime(2024, 3, 10, tzinfo=UTC), recorded_by="cli:amara"),
    )
    mapper = TypedMapper()

    for event in partner.collect_events():
        assert isinstance(event, ChainedAggregate.Event)
        restored = mapper.to_domain_event(mapper.to_stored_event(event))
        assert_identical(restored.data, event.data)
        assert restored.compute_hash() == event.hash
    assert isinstance(restored.data, CommitmentMade)
    assert restored.data.amount == Decimal("10.50")
    assert restored.data.due_on == date(2024, 4, 1)


def test_a_new_event_is_stored_with_the_data_it_was_hashed_over_and_then_lets_it_go() -> None:
    partner = eastside()
    partner.execute(
        ContactMade.model_validate(
            {"channel": "phone", "direction": "inbound", "summary": "Spoke with Rosa"}
        ),
        Stamp(occurred_at=datetime(2024, 3, 11, tzinfo=UTC), recorded_by="cli:amara"),
    )
    mapper = TypedMapper()

    for event in partner.collect_events():
        assert isinstance(event, ChainedAggregate.Event)
        kept = event.hashed_data()
        kept["changed by the caller"] = True  # a copy: the event's own is untouched
        stored = mapper.to_stored_event(event)

        assert orjson.loads(stored.state)["data"] == event.hashed_data()
        assert "_hashed" not in vars(event)  # given up once stored
        assert event.compute_hash() == event.hash
        assert mapper.to_domain_event(stored).compute_hash() == event.hash


# ---- stored content that no longer decodes ------------------------------------------------


def stored_contact(state: bytes) -> StoredEvent:
    return StoredEvent(
        originator_id=uuid4(),
        originator_version=2,
        topic=get_topic(Partner.ContactMade),
        state=state,
    )


def good_contact_state() -> dict[str, Any]:
    return {
        "occurred_at": "2024-03-10T15:00:00.000000Z",
        "recorded_at": "2024-03-10T15:00:01.000000Z",
        "recorded_by": "cli:amara",
        "prev_hash": "0" * 64,
        "hash": "f" * 64,
        "data": {"channel": "phone", "direction": "inbound", "summary": ""},
    }


def test_a_well_formed_stored_state_decodes() -> None:
    event = TypedMapper().to_domain_event(stored_contact(orjson.dumps(good_contact_state())))

    assert isinstance(event, Partner.ContactMade)
    assert event.data == ContactMade(channel=Channel.PHONE, direction=Direction.INBOUND)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda state: b"{not json",
        lambda state: orjson.dumps({**state, "data": {**state["data"], "channel": "pigeon"}}),
        lambda state: orjson.dumps({**state, "data": {**state["data"], "extra": 1}}),
        lambda state: orjson.dumps({k: v for k, v in state.items() if k != "occurred_at"}),
        lambda state: orjson.dumps({**state, "recorded_at": "yesterday"}),
        lambda state: orjson.dumps({**state, "data": None}),
    ],
    ids=["not-json", "bad-enum", "unknown-field", "missing-field", "bad-instant", "no-data"],
)
def test_a_corrupted_stored_state_raises_a_deserialisation_error(corrupt: Any) -> None:
    stored = stored_contact(corrupt(good_contact_state()))

    with pytest.raises(MapperDeserialisationError):
        TypedMapper().to_domain_event(stored)


def test_a_stored_event_of_an_unknown_topic_raises_a_deserialisation_error() -> None:
    stored = StoredEvent(
        originator_id=uuid4(),
        originator_version=1,
        topic="domain.partner:Partner.Vanished",
        state=orjson.dumps(good_contact_state()),
    )

    with pytest.raises(MapperDeserialisationError):
        TypedMapper().to_domain_event(stored)


# ---- the canonical JSON behind every hash -------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text()
    | st.text(alphabet=st.characters(max_codepoint=0x9F))  # dense in control characters
    | st.sampled_from(['"', "\\", "\\u0000", "\u2028", "é", "😀", "\x00", "\x7f", "</script>"])
)
json_documents = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def canonical_by_the_spec(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@untimed
@given(json_documents)
def test_orjson_canonical_encoding_is_the_spec_json_dumps(document: Any) -> None:
    assert orjson.dumps(document, option=orjson.OPT_SORT_KEYS) == canonical_by_the_spec(document)


@untimed
@given(st.dictionaries(st.text(max_size=10), json_scalars, max_size=5))
def test_event_hash_uses_the_spec_canonical_form(data: dict[str, Any]) -> None:
    moment = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    stream_id = UUID("0b7e2b52-5a3c-4f5e-9a35-2d9c6a1f4e10")
    document = {
        "stream_id": str(stream_id),
        "version": 3,
        "type": "contact_made",
        "occurred_at": "2026-01-05T15:00:00.000000Z",
        "recorded_at": "2026-01-05T15:00:00.000000Z",
        "recorded_by": "cli:amara",
        "data": data,
        "prev_hash": "0" * 64,
    }

    digest = event_hash(
        stream_id=stream_id,
        version=3,
        type="contact_made",
        occurred_at=moment,
        recorded_at=moment,
        recorded_by="cli:amara",
        data=data,
        prev_hash="0" * 64,
    )

    assert digest == hashlib.sha256(canonical_by_the_spec(document)).hexdigest()
