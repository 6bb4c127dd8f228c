"""Personal fields as salted commitments (format 2, issue 16): what is hashed, what is kept
apart, and what an erased event reads as."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import cast

import pytest
from cryptography.exceptions import InvalidTag
from eventsourcing.persistence import StoredEvent

from domain.chained import ChainedAggregate, Stamp
from domain.partner import Partner
from domain.personal import (
    ERASED_TEXT,
    PERSONAL,
    decrypt,
    disclose,
    encrypt,
    erased_name,
    new_key,
    seal,
)
from domain.serialization import PersonalStoredEvent, TypedMapper
from domain.values import (
    ContactMade,
    ErasureReason,
    PartnerKind,
    PartnerRegistered,
    PersonalDataErased,
    Preferences,
)

STAMP = Stamp(datetime(2026, 1, 5, 15, tzinfo=UTC), "steward:ana")


def _registered() -> Partner:
    return Partner.register(
        PartnerRegistered(
            name="Rosa Quintero",
            kind=PartnerKind.INDIVIDUAL,
            communities=("deaf community",),
            preferences=Preferences(accessibility=("ASL interpreter",)),
        ),
        STAMP,
    )


def test_each_commitment_is_sha256_over_the_salt_and_the_canonical_json() -> None:
    data = {"channel": "email", "summary": "Café ☕ with Rosa", "attendees": []}

    sealed = seal(data, ("summary", "attendees"))

    assert sealed is not None
    assert set(sealed.commitments) == {"summary"}  # an empty value says nothing: not committed
    salt, value = sealed.disclosed["summary"]
    assert len(salt) == 32
    assert value == "Café ☕ with Rosa"
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert sealed.commitments["summary"] == hashlib.sha256((salt + canonical).encode()).hexdigest()
    assert sealed.hashed(data) == {
        "channel": "email",
        "attendees": [],
        PERSONAL: {"format": 2, "commitments": sealed.commitments},
    }
    assert seal({"summary": ""}, ("summary",)) is None


def test_the_same_value_gets_a_different_commitment_each_time() -> None:
    first, second = (seal({"name": "Rosa"}, ("name",)) for _ in range(2))
    assert first is not None
    assert second is not None
    assert first.commitments["name"] != second.commitments["name"]  # no dictionary attack


def test_a_new_event_hashes_its_commitments_and_round_trips_with_its_values() -> None:
    partner = _registered()
    partner.execute(ContactMade(channel="phone", direction="inbound", summary="Met Rosa"), STAMP)
    mapper = TypedMapper()

    for event in cast(list[ChainedAggregate.Event], partner.collect_events()):
        stored = mapper.to_stored_event(event)
        assert isinstance(stored, PersonalStoredEvent)
        assert [subject for subject, _ in stored.rows] == [str(partner.id)]
        assert b"Rosa" not in stored.state  # the values go beside the event, never in it
        restored = mapper.to_domain_event(stored)
        assert restored.data == event.data
        assert restored.compute_hash() == event.hash


def test_an_erased_event_reads_as_placeholders_and_still_hashes_the_same() -> None:
    partner = _registered()
    (event,) = cast(list[ChainedAggregate.Event], partner.collect_events())
    mapper = TypedMapper()
    stored = mapper.to_stored_event(event)
    # As the recorder reads it back once the subject's rows are gone: no values beside it.
    erased = StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, stored.state
    )

    restored = mapper.to_domain_event(erased)

    assert restored.data.name == erased_name(str(partner.id))
    assert restored.data.communities == ()
    assert restored.data.preferences == Preferences()
    assert restored.compute_hash() == event.hash
    assert disclose({"summary": "x"}, None, "s") == {"summary": "x"}  # format 1: as it is
    assert disclose({PERSONAL: {"format": 2, "commitments": {"note": "ab"}}}, None, "s") == {
        "note": ERASED_TEXT
    }


def test_the_erasure_event_turns_the_aggregate_to_placeholders() -> None:
    partner = _registered()

    partner.erase_personal_data(PersonalDataErased(reason=ErasureReason.REQUEST), STAMP)

    assert partner.name == erased_name(str(partner.id))
    assert (partner.communities, partner.preferences, partner.erased) == ((), Preferences(), True)
    with pytest.raises(Exception, match="not an event a partner records"):
        partner.execute(PersonalDataErased(reason=ErasureReason.REQUEST), STAMP)


def test_a_row_moved_to_another_event_or_subject_does_not_decrypt() -> None:
    key = new_key()
    nonce, sealed = encrypt(key, "stream", 2, "subject", b'{"summary":["ab","x"]}')

    assert decrypt(key, "stream", 2, "subject", nonce, sealed) == {"summary": ("ab", "x")}
    with pytest.raises(InvalidTag):
        decrypt(key, "stream", 3, "subject", nonce, sealed)
    with pytest.raises(InvalidTag):
        decrypt(new_key(), "stream", 2, "subject", nonce, sealed)


def test_each_contact_person_has_a_commitment_and_a_subject_of_their_own() -> None:
    people = [{"name": "Rosa Delgado", "role": None, "email": "rosa@example.org", "phone": None},
              {"name": "Ana Ruiz", "role": "Chair", "email": None, "phone": None}]  # fmt: skip
    data = {"contacts": {"emails": [], "phones": [], "address": None, "people": people}}

    first = seal(data, ["contacts"])
    assert first is not None
    keys = first.disclosed["contacts"][1]["people"]
    assert sorted(first.commitments) == sorted(
        ["contacts", *(f"contacts.people.{key}" for key in keys)]
    )
    assert {subject for subject, _ in first.plaintexts("P")} == {"P", *(f"P/{k}" for k in keys)}
    # A later event keeps the keys of the people on record, whatever their order.
    later = seal({"contacts": {**data["contacts"], "people": people[::-1]}}, ["contacts"],
                 {"rosa delgado": keys[0], "ana ruiz": keys[1]})  # fmt: skip
    assert later is not None
    assert later.disclosed["contacts"][1]["people"] == keys[::-1]

    held = dict(first.disclosed)
    del held[f"contacts.people.{keys[0]}"]  # Rosa alone erased
    shown = disclose(first.hashed(data), held, "P")
    assert [p["name"] for p in shown["contacts"]["people"]] == ["Erased contact person", "Ana Ruiz"]
    assert first.mismatches() == []
