"""Contacts on a partner (issue 12 item 3): personal data, shaped at the door, and absent from
every event recorded before they existed, which still decodes and hashes exactly as before."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from pydantic import ValidationError

from domain.chained import Stamp
from domain.hashing import GENESIS, event_hash
from domain.partner import Partner
from domain.serialization import TypedMapper
from domain.values import ContactPerson, Contacts, PartnerRegistered, ProfileUpdated

STREAM = UUID("6f1c2b9e-8d3a-4c1e-9b7a-2f4d5e6a7b8c")
WHEN = datetime(2025, 6, 2, 16, 0, tzinfo=UTC)
# A registration's data exactly as events recorded before contacts existed hold it.
OLD_REGISTRATION: dict[str, Any] = {
    "name": "Eastside Tenants Union",
    "kind": "organization",
    "roles": [],
    "communities": ["tenants"],
    "region": None,
    "referred_by": None,
    "preferences": {"channels": [], "language": None, "accessibility": [], "gratitude": []},
}


def stored_registration(data: dict[str, Any]) -> tuple[StoredEvent, str]:
    digest = event_hash(
        stream_id=STREAM,
        version=1,
        type="partner_registered",
        occurred_at=WHEN,
        recorded_at=WHEN,
        recorded_by="cli:amara",
        data=data,
        prev_hash=GENESIS,
    )
    state = {
        "occurred_at": "2025-06-02T16:00:00.000000Z",
        "recorded_at": "2025-06-02T16:00:00.000000Z",
        "recorded_by": "cli:amara",
        "prev_hash": GENESIS,
        "hash": digest,
        "data": data,
    }
    topic = get_topic(Partner.Registered)
    return StoredEvent(STREAM, 1, topic, orjson.dumps(state)), digest


def test_an_event_from_before_contacts_decodes_and_hashes_as_it_did() -> None:
    stored, digest = stored_registration(OLD_REGISTRATION)
    mapper = TypedMapper()

    event = mapper.to_domain_event(stored)

    assert event.data.contacts is None
    assert event.compute_hash() == digest
    assert orjson.loads(mapper.to_stored_event(event).state)["data"] == OLD_REGISTRATION
    partner = Partner.register(event.data, Stamp(WHEN, "cli:amara"), stream_id=STREAM)
    assert partner.contacts == Contacts()


def test_a_new_registration_without_contacts_has_the_old_shape() -> None:
    data = PartnerRegistered.model_validate({**OLD_REGISTRATION})
    assert data.model_dump(mode="json") == OLD_REGISTRATION
    assert "contacts" not in ProfileUpdated(region="North").model_dump(mode="json")


def test_contacts_are_recorded_folded_and_hashed_with_the_event() -> None:
    given = {
        "emails": ["info@example.org"],
        "phones": ["+1 559 555 0100"],
        "address": "1 Main St",
        "people": [{"name": "Ana Ruiz", "role": "Director", "email": None, "phone": None}],
    }
    data = PartnerRegistered.model_validate({**OLD_REGISTRATION, "contacts": given})
    partner = Partner.register(data, Stamp(WHEN, "cli:amara"))
    partner.execute(
        ProfileUpdated.model_validate({"contacts": {"phones": ["555 0101"]}}),
        Stamp(WHEN, "cli:amara"),
    )
    mapper = TypedMapper()

    events = [mapper.to_domain_event(mapper.to_stored_event(e)) for e in partner.collect_events()]

    assert events[0].data.model_dump(mode="json")["contacts"] == given
    assert all(e.compute_hash() == e.hash for e in events)
    assert partner.contacts == Contacts(phones=("555 0101",))  # an update replaces them whole


def test_contacts_are_named_as_personal_data_for_erasure() -> None:
    assert "contacts" in PartnerRegistered.PERSONAL_FIELDS
    assert "contacts" in ProfileUpdated.PERSONAL_FIELDS


@pytest.mark.parametrize(
    ("contacts", "where"),
    [
        ({"emails": ["name.example.org"]}, ("contacts", "emails", 0)),
        ({"emails": ["a@b@example.org"]}, ("contacts", "emails", 0)),
        ({"phones": ["call me"]}, ("contacts", "phones", 0)),
        ({"phones": ["12"]}, ("contacts", "phones", 0)),
        ({"people": [{"name": "Ana\u202eRuiz"}]}, ("contacts", "people", 0, "name")),
        ({"people": [{"role": "Director"}]}, ("contacts", "people", 0, "name")),
        ({"address": "1 Main St\x1b[2J"}, ("contacts", "address")),
        ({"fax": "555"}, ("contacts", "fax")),
    ],
)
def test_contacts_are_shaped_at_the_door(contacts: dict[str, Any], where: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as refused:
        PartnerRegistered.model_validate({**OLD_REGISTRATION, "contacts": contacts})
    assert [e["loc"] for e in refused.value.errors()] == [where]


def test_well_formed_contacts_are_kept_as_written() -> None:
    data = PartnerRegistered.model_validate(
        {
            **OLD_REGISTRATION,
            "contacts": {
                "emails": [" José.Ramírez@Example.org "],
                "phones": ["(559) 555-0123 x 12", "+44 20 7946 0958"],
                "people": [{"name": "Ana Ruiz", "email": "ana@exämple.org"}],
            },
        }
    )
    assert data.contacts is not None
    assert data.contacts.emails == ("José.Ramírez@Example.org",)
    assert data.contacts.people == (ContactPerson(name="Ana Ruiz", email="ana@exämple.org"),)
