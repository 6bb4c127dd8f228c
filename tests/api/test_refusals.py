"""Every refusal of SPEC §2 and §4 through HTTP: the right status, as problem+json with a
human ``detail``, and nothing recorded.

The refused commands all target one partner with a commitment in every state, breaches,
feedback and a retraction, recorded once per store; each test checks the log is unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.api.conftest import Api


def in_future(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


T0 = "2025-01-06T10:00:00Z"
T1 = "2025-01-10T10:00:00Z"
T2 = "2025-01-20T10:00:00Z"


# ---- every refusal of SPEC §2: problem+json, and nothing recorded -------------------------------


@dataclass(frozen=True)
class World:
    """A partner with a commitment in every state, breaches, feedback and a retraction."""

    api: Api
    partner_id: str
    coalition_id: str
    member_id: str
    outsider_id: str
    version: int


@pytest.fixture(scope="module")
def world(shared_api: Api) -> World:
    api = shared_api
    coalition_id = api.form_coalition("Valley Coalition")
    pid = api.register("Eastside Tenants Union", occurred_at=T0)
    made = {"owed_by": "us", "description": "Stipend", "resource": "financial"}
    api.append(pid, "commitment_made", T1, commitment_id="C-OPEN", due_on="2025-12-31", **made)
    api.append(pid, "commitment_made", T1, commitment_id="C-DONE", due_on="2025-02-01", **made)
    api.append(pid, "commitment_fulfilled", T2, commitment_id="C-DONE")
    api.append(pid, "commitment_made", T1, commitment_id="C-GONE", due_on="2025-03-01", **made)
    api.append(pid, "commitment_cancelled", T2, commitment_id="C-GONE", reason="Called off.")
    breach = {"severity": "minor", "caused_by": "us", "description": "Late."}
    api.append(pid, "trust_breach_recorded", T1, breach_id="B-OPEN", **breach)
    api.append(pid, "trust_breach_recorded", T1, breach_id="B-FIXED", **breach)
    api.append(pid, "trust_repaired", T2, breach_id="B-FIXED", summary="Apologised.")
    api.append(pid, "feedback_received", T1, feedback_id="F-1", summary="More notice.")
    api.append(pid, "contact_made", T1, channel="email", direction="outbound")  # version 11
    api.append(pid, "entry_retracted", T2, version=11, reason="Wrong partner.")  # version 12
    member_id = api.register("Riverside Youth", occurred_at=T0)
    api.join(coalition_id, member_id)
    outsider_id = api.register("Hilltop Elders", occurred_at=T0)
    return World(api, pid, coalition_id, member_id, outsider_id, version=12)


LONG_TEXT = "x" * 10_001

# (case id, body fields, status, fragments of the detail)
REFUSED_EVENTS: list[tuple[str, dict[str, Any], int, tuple[str, ...]]] = [
    # unknown references: 422
    (
        "fulfil-unknown-commitment",
        {"type": "commitment_fulfilled", "commitment_id": "C-NOPE"},
        422,
        ("C-NOPE",),
    ),
    (
        "renegotiate-unknown-commitment",
        {"type": "commitment_renegotiated", "commitment_id": "C-NOPE", "due_on": "2025-06-01"},
        422,
        ("C-NOPE",),
    ),
    (
        "cancel-unknown-commitment",
        {"type": "commitment_cancelled", "commitment_id": "C-NOPE"},
        422,
        ("C-NOPE",),
    ),
    (
        "payment-for-unknown-commitment",
        {
            "type": "payment_made",
            "amount": "5",
            "currency": "USD",
            "purpose": "other",
            "commitment_id": "C-NOPE",
        },
        422,
        ("C-NOPE",),
    ),
    (
        "thanks-for-unknown-commitment",
        {"type": "thanks_expressed", "form": "note", "for_commitment_id": "C-NOPE"},
        422,
        ("C-NOPE",),
    ),
    ("repair-unknown-breach", {"type": "trust_repaired", "breach_id": "B-NOPE"}, 422, ("B-NOPE",)),
    (
        "outcome-of-unknown-feedback",
        {"type": "outcome_shared", "feedback_id": "F-NOPE"},
        422,
        ("F-NOPE",),
    ),
    (
        "unknown-coalition-on-commitment",
        {
            "type": "commitment_made",
            "owed_by": "us",
            "description": "x",
            "due_on": "2025-06-01",
            "resource": "time",
            "coalition_id": "8f9d3a54-4c1e-4a59-9d59-5a2f3b8f4e11",
        },
        422,
        ("coalition_id",),
    ),
    # closed commitments and repaired breaches: 409
    (
        "fulfil-fulfilled",
        {"type": "commitment_fulfilled", "commitment_id": "C-DONE"},
        409,
        ("C-DONE", "fulfilled"),
    ),
    (
        "fulfil-cancelled",
        {"type": "commitment_fulfilled", "commitment_id": "C-GONE"},
        409,
        ("C-GONE", "cancelled"),
    ),
    (
        "renegotiate-fulfilled",
        {"type": "commitment_renegotiated", "commitment_id": "C-DONE", "due_on": "2025-06-01"},
        409,
        ("C-DONE",),
    ),
    (
        "renegotiate-cancelled",
        {"type": "commitment_renegotiated", "commitment_id": "C-GONE", "due_on": "2025-06-01"},
        409,
        ("C-GONE",),
    ),
    (
        "cancel-fulfilled",
        {"type": "commitment_cancelled", "commitment_id": "C-DONE"},
        409,
        ("C-DONE",),
    ),
    (
        "cancel-cancelled",
        {"type": "commitment_cancelled", "commitment_id": "C-GONE"},
        409,
        ("C-GONE",),
    ),
    ("repair-twice", {"type": "trust_repaired", "breach_id": "B-FIXED"}, 409, ("B-FIXED",)),
    (
        "reuse-commitment-id",
        {
            "type": "commitment_made",
            "commitment_id": "C-OPEN",
            "owed_by": "us",
            "description": "x",
            "due_on": "2025-06-01",
            "resource": "time",
        },
        409,
        ("C-OPEN",),
    ),
    # retractions: 422
    (
        "retract-a-retraction",
        {"type": "entry_retracted", "version": 12, "reason": "Oops."},
        422,
        ("retraction",),
    ),
    (
        "retract-the-registration",
        {"type": "entry_retracted", "version": 1, "reason": "Oops."},
        422,
        ("registration",),
    ),
    (
        "retract-unknown-version",
        {"type": "entry_retracted", "version": 99, "reason": "Oops."},
        422,
        ("99",),
    ),
    (
        "retract-version-zero",
        {"type": "entry_retracted", "version": 0, "reason": "Oops."},
        422,
        ("version",),
    ),
    # money
    (
        "payment-of-zero",
        {"type": "payment_made", "amount": "0", "currency": "USD", "purpose": "stipend"},
        422,
        ("amount",),
    ),
    (
        "payment-below-zero",
        {"type": "payment_made", "amount": "-5.00", "currency": "USD", "purpose": "stipend"},
        422,
        ("amount",),
    ),
    (
        "commitment-amount-zero",
        {
            "type": "commitment_made",
            "owed_by": "us",
            "description": "x",
            "due_on": "2025-06-01",
            "resource": "financial",
            "amount": "0",
            "currency": "USD",
        },
        422,
        ("amount",),
    ),
    (
        "commitment-amount-without-currency",
        {
            "type": "commitment_made",
            "owed_by": "us",
            "description": "x",
            "due_on": "2025-06-01",
            "resource": "financial",
            "amount": "10",
        },
        422,
        ("currency",),
    ),
    (
        "unknown-currency",
        {"type": "payment_made", "amount": "5", "currency": "XYZ", "purpose": "stipend"},
        422,
        ("currency", "XYZ"),
    ),
    (
        "lowercase-currency",
        {"type": "payment_made", "amount": "5", "currency": "usd", "purpose": "stipend"},
        422,
        ("currency",),
    ),
    (
        "currency-too-long",
        {"type": "payment_made", "amount": "5", "currency": "DOLLARS", "purpose": "stipend"},
        422,
        ("currency",),
    ),
    (
        "three-places-of-dollars",
        {"type": "payment_made", "amount": "10.005", "currency": "USD", "purpose": "stipend"},
        422,
        ("amount",),
    ),
    (
        "money-as-json-float",
        {"type": "payment_made", "amount": 10.5, "currency": "USD", "purpose": "stipend"},
        422,
        ("amount", "decimal string"),
    ),
    (
        "commitment-money-as-json-float",
        {
            "type": "commitment_made",
            "owed_by": "us",
            "description": "x",
            "due_on": "2025-06-01",
            "resource": "financial",
            "amount": 150.0,
            "currency": "USD",
        },
        422,
        ("amount",),
    ),
    (
        "amount-not-a-number",
        {"type": "payment_made", "amount": "ten", "currency": "USD", "purpose": "stipend"},
        422,
        ("amount",),
    ),
    # enums, missing and unknown fields
    (
        "bad-channel",
        {"type": "contact_made", "channel": "fax", "direction": "inbound"},
        422,
        ("channel",),
    ),
    ("bad-stage", {"type": "stage_changed", "stage": "dormant"}, 422, ("stage",)),
    (
        "bad-severity",
        {
            "type": "trust_breach_recorded",
            "severity": "awful",
            "caused_by": "us",
            "description": "x",
        },
        422,
        ("severity",),
    ),
    (
        "bad-owed-by",
        {
            "type": "commitment_made",
            "owed_by": "them",
            "description": "x",
            "due_on": "2025-06-01",
            "resource": "time",
        },
        422,
        ("owed_by",),
    ),
    ("missing-direction", {"type": "contact_made", "channel": "email"}, 422, ("direction",)),
    (
        "missing-currency",
        {"type": "payment_made", "amount": "5", "purpose": "stipend"},
        422,
        ("currency",),
    ),
    (
        "missing-description",
        {"type": "commitment_made", "owed_by": "us", "due_on": "2025-06-01", "resource": "time"},
        422,
        ("description",),
    ),
    (
        "blank-description",
        {
            "type": "trust_breach_recorded",
            "severity": "minor",
            "caused_by": "us",
            "description": "  ",
        },
        422,
        ("description",),
    ),
    (
        "unknown-field",
        {"type": "contact_made", "channel": "email", "direction": "inbound", "mood": "happy"},
        422,
        ("mood",),
    ),
    (
        "id-with-spaces",
        {"type": "feedback_received", "feedback_id": "F 1/2", "summary": "x"},
        422,
        ("feedback_id",),
    ),
    (
        "text-too-long",
        {"type": "contact_made", "channel": "email", "direction": "inbound", "summary": LONG_TEXT},
        422,
        ("summary",),
    ),
    (
        "list-too-long",
        {"type": "meeting_held", "kind": "event", "location": "ours", "attendees": ["a"] * 101},
        422,
        ("attendees",),
    ),
    ("cadence-zero", {"type": "checkin_cadence_agreed", "every_days": 0}, 422, ("every_days",)),
    (
        "cadence-over-a-year",
        {"type": "checkin_cadence_agreed", "every_days": 367},
        422,
        ("every_days",),
    ),
    (
        "cadence-as-text",
        {"type": "checkin_cadence_agreed", "every_days": "30"},
        422,
        ("every_days",),
    ),
    ("unknown-type", {"type": "gift_sent", "summary": "x"}, 422, ("type",)),
    (
        "registration-as-an-event",
        {"type": "partner_registered", "name": "Again", "kind": "individual"},
        422,
        ("type",),
    ),
    ("no-type", {"channel": "email", "direction": "inbound"}, 422, ("type",)),
    (
        "negative-expected-version",
        {"type": "stage_changed", "stage": "paused", "expected_version": -1},
        422,
        ("expected_version",),
    ),
    # time
    (
        "due-before-made",
        {
            "type": "commitment_made",
            "owed_by": "us",
            "description": "x",
            "due_on": "2025-01-09",
            "resource": "time",
            "occurred_at": T1,
        },
        422,
        ("due_on",),
    ),
    (
        "renegotiated-before-made",
        {"type": "commitment_renegotiated", "commitment_id": "C-OPEN", "due_on": "2025-01-01"},
        422,
        ("due_on",),
    ),
    (
        "occurred-day-first",
        {"type": "stage_changed", "stage": "paused", "occurred_at": "01/02/2025 10:00"},
        422,
        ("occurred_at",),
    ),
    (
        "occurred-not-a-time",
        {"type": "stage_changed", "stage": "paused", "occurred_at": "last week"},
        422,
        ("occurred_at",),
    ),
    (
        "bad-due-date",
        {
            "type": "commitment_made",
            "owed_by": "us",
            "description": "x",
            "due_on": "2025-02-30",
            "resource": "time",
        },
        422,
        ("due_on",),
    ),
]


@pytest.mark.parametrize(
    ("fields", "status", "fragments"),
    [
        pytest.param(fields, status, fragments, id=case)
        for case, fields, status, fragments in REFUSED_EVENTS
    ],
)
def test_a_refused_event_is_a_problem_and_records_nothing(
    world: World, fields: dict[str, Any], status: int, fragments: tuple[str, ...]
) -> None:
    api = world.api
    before = api.event_count()
    body = {"occurred_at": "2025-02-01T10:00:00Z", **fields}

    response = api.client.post(
        f"/v1/partners/{world.partner_id}/events", json=body, headers=api.steward
    )

    api.assert_problem(response, status, *fragments)
    assert api.event_count() == before
    assert api.read(f"/v1/partners/{world.partner_id}")["version"] == world.version


def test_an_event_in_the_future_is_refused(world: World) -> None:
    api = world.api
    before = api.event_count()
    body = {
        "type": "contact_made",
        "channel": "email",
        "direction": "inbound",
        "occurred_at": in_future(),
    }
    response = api.client.post(
        f"/v1/partners/{world.partner_id}/events", json=body, headers=api.steward
    )
    api.assert_problem(response, 422, "occurred_at", "future")
    assert api.event_count() == before


@pytest.mark.parametrize(
    "content",
    [
        b'{"type": "contact_made", "channel": "email",',
        b"",
        b"not json at all",
        b"[1, 2]",
        b'"contact_made"',
    ],
    ids=["truncated", "empty", "text", "a-list", "a-string"],
)
def test_a_body_that_is_not_a_json_object_is_422(world: World, content: bytes) -> None:
    api = world.api
    before = api.event_count()
    response = api.client.post(
        f"/v1/partners/{world.partner_id}/events",
        content=content,
        headers={**api.steward, "Content-Type": "application/json"},
    )
    api.assert_problem(response, 422)
    assert api.event_count() == before


@pytest.mark.parametrize("target", ["unknown", "not-a-uuid", "a-coalition"])
def test_an_event_for_a_partner_not_on_record_is_404(world: World, target: str) -> None:
    api = world.api
    partner_id = {
        "unknown": str(uuid.uuid4()),
        "not-a-uuid": "eastside",
        "a-coalition": world.coalition_id,
    }[target]
    before = api.event_count()
    body = {"type": "contact_made", "channel": "email", "direction": "inbound", "occurred_at": T1}
    response = api.client.post(f"/v1/partners/{partner_id}/events", json=body, headers=api.steward)
    api.assert_problem(response, 404, partner_id)
    assert api.event_count() == before


def test_a_stale_expected_version_is_409_with_the_current_version(world: World) -> None:
    api = world.api
    before = api.event_count()
    body = {"type": "stage_changed", "stage": "paused", "expected_version": 3, "occurred_at": T2}
    response = api.client.post(
        f"/v1/partners/{world.partner_id}/events", json=body, headers=api.steward
    )
    problem = api.assert_problem(response, 409, "expected_version")
    assert problem["current_version"] == world.version
    assert api.event_count() == before


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"kind": "organization"}, "name"),
        ({"name": "X", "kind": "company"}, "kind"),
        ({"name": "X", "kind": "individual", "shoe_size": 44}, "shoe_size"),
        ({"name": "X", "kind": "individual", "occurred_at": "FUTURE"}, "occurred_at"),
        (
            {
                "name": "X",
                "kind": "individual",
                "referred_by": "8f9d3a54-4c1e-4a59-9d59-5a2f3b8f4e11",
            },
            "referred_by",
        ),
        ({"name": "X", "kind": "individual", "referred_by": "not-a-uuid"}, "referred_by"),
        ({"name": "   ", "kind": "individual"}, "name"),
        ({"name": "X", "kind": "individual", "roles": "speaker"}, "roles"),
        ({"name": "X", "kind": "individual", "preferences": {"channels": ["pigeon"]}}, "channels"),
        ({"name": "X", "kind": "individual", "communities": ["c"] * 101}, "communities"),
    ],
    ids=[
        "no-name",
        "bad-kind",
        "unknown-field",
        "future",
        "unknown-referrer",
        "referrer-not-a-uuid",
        "blank-name",
        "roles-not-a-list",
        "bad-channel",
        "too-many-communities",
    ],
)
def test_a_refused_registration_is_a_problem_and_records_nothing(
    world: World, body: dict[str, Any], fragment: str
) -> None:
    api = world.api
    before = api.event_count()
    if body.get("occurred_at") == "FUTURE":
        body = {**body, "occurred_at": in_future()}
    response = api.client.post("/v1/partners", json=body, headers=api.steward)
    api.assert_problem(response, 422, fragment)
    assert api.event_count() == before


def test_coalition_membership_refusals_record_nothing(world: World) -> None:
    api = world.api
    before = api.event_count()
    members = f"/v1/coalitions/{world.coalition_id}/members"
    at = "2025-02-01T10:00:00Z"

    again = api.client.post(
        members, json={"partner_id": world.member_id, "occurred_at": at}, headers=api.steward
    )
    api.assert_problem(again, 409, world.member_id)
    stranger = str(uuid.uuid4())
    unknown_partner = api.client.post(
        members, json={"partner_id": stranger, "occurred_at": at}, headers=api.steward
    )
    api.assert_problem(unknown_partner, 422, stranger)
    coalition_as_partner = api.client.post(
        members, json={"partner_id": world.coalition_id, "occurred_at": at}, headers=api.steward
    )
    api.assert_problem(coalition_as_partner, 422, world.coalition_id)
    nowhere = str(uuid.uuid4())
    unknown_coalition = api.client.post(
        f"/v1/coalitions/{nowhere}/members",
        json={"partner_id": world.member_id},
        headers=api.steward,
    )
    api.assert_problem(unknown_coalition, 404, nowhere)
    partner_as_coalition = api.client.post(
        f"/v1/coalitions/{world.partner_id}/members",
        json={"partner_id": world.member_id},
        headers=api.steward,
    )
    api.assert_problem(partner_as_coalition, 404, world.partner_id)
    not_a_uuid = api.client.post(
        "/v1/coalitions/valley/members", json={"partner_id": world.member_id}, headers=api.steward
    )
    api.assert_problem(not_a_uuid, 404, "valley")
    no_partner = api.client.post(members, json={"occurred_at": at}, headers=api.steward)
    api.assert_problem(no_partner, 422, "partner_id")

    leave_outsider = api.client.delete(f"{members}/{world.outsider_id}", headers=api.steward)
    api.assert_problem(leave_outsider, 409, world.outsider_id)
    leave_nobody = api.client.delete(f"{members}/not-a-uuid", headers=api.steward)
    api.assert_problem(leave_nobody, 422, "partner_id")
    leave_unknown_coalition = api.client.delete(
        f"/v1/coalitions/{nowhere}/members/{world.member_id}", headers=api.steward
    )
    api.assert_problem(leave_unknown_coalition, 404, nowhere)
    leave_a_partner = api.client.delete(
        f"/v1/coalitions/{world.partner_id}/members/{world.member_id}", headers=api.steward
    )
    api.assert_problem(leave_a_partner, 404, world.partner_id)
    leave_in_future = api.client.delete(
        f"{members}/{world.member_id}", params={"occurred_at": in_future()}, headers=api.steward
    )
    api.assert_problem(leave_in_future, 422, "occurred_at")

    no_name = api.client.post("/v1/coalitions", json={"shared_vision": "x"}, headers=api.steward)
    api.assert_problem(no_name, 422, "name")
    assert api.event_count() == before
    assert [
        m["partner_id"] for m in api.read(f"/v1/coalitions/{world.coalition_id}")["members"]
    ] == [world.member_id]


@pytest.mark.parametrize(
    ("path", "params", "status", "fragment"),
    [
        ("/v1/partners/{pid}/timeline", {"types": "contact_made,gift_sent"}, 422, "gift_sent"),
        ("/v1/partners/{pid}/timeline", {"from": "2025-13-01"}, 422, "from"),
        ("/v1/partners/{pid}/timeline", {"cursor": "garbage"}, 422, "cursor"),
        ("/v1/partners/{pid}/timeline", {"limit": 0}, 422, "limit"),
        ("/v1/partners/{unknown}/timeline", {}, 404, "{unknown}"),
        ("/v1/partners/{unknown}/health", {}, 404, "{unknown}"),
        ("/v1/partners/nope/health", {}, 404, "nope"),
        ("/v1/partners/{pid}/health", {"position": -1}, 422, "position"),
        ("/v1/partners/{pid}/health", {"position": 10_000}, 422, "position"),
        (
            "/v1/partners/{pid}/health/history",
            {"from": "2025-03-01", "to": "2025-02-01"},
            422,
            "from",
        ),
        ("/v1/partners/{pid}/health/history", {"interval": "day"}, 422, "interval"),
        ("/v1/partners/{unknown}/health/history", {}, 404, "{unknown}"),
        ("/v1/partners/{unknown}/commitments", {}, 404, "{unknown}"),
        ("/v1/accountability", {"owed_by": "them"}, 422, "owed_by"),
        ("/v1/accountability", {"coalition_id": "{unknown}"}, 404, "{unknown}"),
        ("/v1/coalitions/{unknown}", {}, 404, "{unknown}"),
        ("/v1/coalitions/{pid}", {}, 404, "{pid}"),
        ("/v1/coalitions/{unknown}/report", {}, 404, "{unknown}"),
        ("/v1/coalitions/{cid}/report", {"format": "pdf"}, 422, "format"),
        ("/v1/coalitions/{cid}/report", {"from": "2025-06-01", "to": "2025-01-01"}, 422, "from"),
        ("/v1/agenda", {"within_days": -1}, 422, "within_days"),
        ("/v1/agenda.ics", {"within_days": "soon"}, 422, "within_days"),
        ("/v1/events", {"limit": 0}, 422, "limit"),
        ("/v1/events", {"after": -1}, 422, "after"),
        ("/v1/nowhere", {}, 404, "Not Found"),
    ],
)
def test_a_refused_read_is_a_problem(
    world: World, path: str, params: dict[str, Any], status: int, fragment: str
) -> None:
    api = world.api
    ids = {
        "pid": world.partner_id,
        "cid": world.coalition_id,
        "unknown": "3b0b9d3e-0000-4000-8000-000000000000",
    }
    query = {k: str(v).format(**ids) for k, v in params.items()}
    response = api.client.get(path.format(**ids), params=query, headers=api.steward)
    api.assert_problem(response, status, fragment.format(**ids))


def test_a_viewer_cannot_write_anything_and_nothing_is_recorded(world: World) -> None:
    api = world.api
    before = api.event_count()
    viewer = api.viewer
    writes = [
        api.client.post("/v1/partners", json={"name": "X", "kind": "individual"}, headers=viewer),
        api.client.post(
            f"/v1/partners/{world.partner_id}/events",
            json={"type": "stage_changed", "stage": "paused"},
            headers=viewer,
        ),
        api.client.post("/v1/coalitions", json={"name": "Y"}, headers=viewer),
        api.client.post(
            f"/v1/coalitions/{world.coalition_id}/members",
            json={"partner_id": world.outsider_id},
            headers=viewer,
        ),
        api.client.delete(
            f"/v1/coalitions/{world.coalition_id}/members/{world.member_id}", headers=viewer
        ),
    ]
    for response in writes:
        api.assert_problem(response, 403, "steward")
    assert api.event_count() == before
