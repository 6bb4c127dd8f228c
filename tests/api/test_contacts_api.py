"""A partner's contacts over the JSON API (issue 12 item 3), on both stores."""

from __future__ import annotations

from tests.api.conftest import Api

CONTACTS = {
    "emails": ["office@eastsidetenants.example.org"],
    "phones": ["+1 559 555 0142"],
    "address": "412 E Main St, Visalia, CA 93291",
    "people": [
        {"name": "Rosa Delgado", "role": "Organizer", "email": None, "phone": "(559) 555-0143"}
    ],
}


def test_contacts_are_registered_updated_and_shown_as_they_stood(api: Api) -> None:
    partner = api.register("Eastside Tenants Union", contacts=CONTACTS)
    assert api.read(f"/v1/partners/{partner}")["contacts"] == CONTACTS
    plain = api.register("Harbor Tenants Union")
    assert api.read(f"/v1/partners/{plain}")["contacts"] == {
        "emails": [],
        "phones": [],
        "address": None,
        "people": [],
    }
    assert "contacts" not in api.log()[-1]["data"]  # none given: none in the event's data

    api.append(
        partner, "profile_updated", "2025-03-01T10:00:00Z", contacts={"emails": ["new@example.org"]}
    )

    now = api.read(f"/v1/partners/{partner}")["contacts"]
    assert now["emails"] == ["new@example.org"]
    assert now["people"] == []  # contacts are replaced whole
    before = api.read(f"/v1/partners/{partner}", as_of="2025-02-01")["contacts"]
    assert before == CONTACTS


def test_a_malformed_contact_is_refused_naming_its_field(api: Api) -> None:
    response = api.client.post(
        "/v1/partners",
        json={
            "name": "Eastside Tenants Union",
            "kind": "organization",
            "contacts": {"emails": ["office@"], "people": [{"name": "Rosa", "phone": "n/a"}]},
        },
        headers=api.steward,
    )

    body = api.assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == [
        "contacts.emails.0",
        "contacts.people.0.phone",
    ]
    assert api.event_count() == 0


def test_the_openapi_example_shows_contacts(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    assert "contacts" in schema["components"]["schemas"]["PartnerCreate"]["properties"]
