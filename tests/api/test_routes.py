"""The routes of SPEC §4 whose answers span the whole ledger, each test on a fresh one.

Registering and listing partners, idempotent retries, read-your-writes, accountability,
coalitions, agenda, review, the global log and its audit, liveness; on SQLite and PostgreSQL.
Each test tells a small story in the world's time (2025) and asks with an explicit ``as_of``,
so the answer does not depend on today; figures are checked exactly.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import icalendar
import pytest

from api.settings import Settings
from tests.api.support import LOG_KEYS, STEWARD_NAME, figures, shown, spec_hash

if TYPE_CHECKING:
    from tests.api.conftest import Api

ZEROS = "0" * 64


def chain_digest(hashes: list[str]) -> str:
    digest = ZEROS
    for event_hash in hashes:
        digest = hashlib.sha256((digest + event_hash).encode("ascii")).hexdigest()
    return digest


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["name"] for row in rows]


T0 = "2025-01-06T10:00:00Z"
T1 = "2025-01-10T10:00:00Z"
T2 = "2025-01-20T10:00:00Z"


# ---- registering and showing partners ----------------------------------------------------------


def test_registering_a_partner_returns_its_id_version_position_and_hash(api: Api) -> None:
    body = {
        "name": "Eastside Tenants Union",
        "kind": "organization",
        "roles": ["advisory_member"],
        "communities": ["tenants"],
        "region": "East",
        "preferences": {"channels": ["phone"], "language": "es"},
        "occurred_at": "2025-01-06T10:00:00Z",
    }
    response = api.client.post("/v1/partners", json=body, headers=api.steward)

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    created = response.json()
    assert set(created) == {"id", "version", "position", "hash", "type", "data"}
    assert uuid.UUID(created["id"]).version == 4
    assert (created["version"], created["position"], created["type"]) == (
        1,
        1,
        "partner_registered",
    )
    assert created["data"] == {
        "name": "Eastside Tenants Union",
        "kind": "organization",
        "roles": ["advisory_member"],
        "communities": ["tenants"],
        "region": "East",
        "referred_by": None,
        "preferences": {
            "channels": ["phone"],
            "language": "es",
            "accessibility": [],
            "gratitude": [],
        },
    }
    (logged,) = api.log()
    assert logged["hash"] == created["hash"] == spec_hash(logged)
    assert logged["recorded_by"] == STEWARD_NAME
    assert logged["occurred_at"] == "2025-01-06T10:00:00.000000Z"


def test_a_partner_is_shown_as_it_stands_now_or_as_it_stood_at_as_of_or_position(api: Api) -> None:
    pid = api.register("Eastside", region="East", occurred_at="2025-01-06T10:00:00Z")
    first_position = api.log()[-1]["position"]
    api.append(
        pid,
        "profile_updated",
        "2025-03-01T10:00:00Z",
        name="Eastside Tenants Union",
        region="North",
    )
    api.append(pid, "stage_changed", "2025-03-05T10:00:00Z", stage="partnership", reason="MOU")
    api.append(pid, "checkin_cadence_agreed", "2025-03-05T11:00:00Z", every_days=60)

    now = api.read(f"/v1/partners/{pid}")
    assert (now["id"], now["name"], now["region"], now["kind"]) == (
        pid,
        "Eastside Tenants Union",
        "North",
        "organization",
    )
    assert (now["stage"], now["cadence_days"], now["version"]) == ("partnership", 60, 4)
    assert now["registered_at"] == "2025-01-06T10:00:00.000000Z"
    assert now["last_touch_at"] is None

    before = api.read(f"/v1/partners/{pid}", as_of="2025-02-01")
    assert (before["name"], before["region"], before["stage"], before["cadence_days"]) == (
        "Eastside",
        "East",
        "prospect",
        30,
    )
    assert before["version"] == 1
    assert before["as_of"] == "2025-02-01T23:59:59.999999Z"

    at_position = api.read(f"/v1/partners/{pid}", position=first_position)
    assert (at_position["name"], at_position["stage"], at_position["position"]) == (
        "Eastside",
        "prospect",
        first_position,
    )
    middle = api.read(f"/v1/partners/{pid}", as_of="2025-03-05T10:30:00Z")
    assert (middle["name"], middle["stage"], middle["cadence_days"]) == (
        "Eastside Tenants Union",
        "partnership",
        30,
    )

    api.assert_problem(api.get(f"/v1/partners/{pid}", as_of="2025-01-05"), 404, pid)
    api.assert_problem(api.get(f"/v1/partners/{pid}", position=first_position + 5), 422, "position")


@pytest.mark.parametrize("partner_id", ["unknown", "not-a-uuid", "coalition"])
def test_showing_a_partner_not_on_record_is_404(api: Api, partner_id: str) -> None:
    api.register("Eastside")
    if partner_id == "unknown":
        partner_id = str(uuid.uuid4())
    elif partner_id == "coalition":
        partner_id = api.form_coalition("Valley Coalition")
    response = api.get(f"/v1/partners/{partner_id}")
    api.assert_problem(response, 404, partner_id)


@dataclass(frozen=True)
class Portfolio:
    ids: dict[str, str]


@pytest.fixture
def portfolio(api: Api) -> Portfolio:
    """Five partners with distinct health, touches, communities, roles and stages."""
    ids = {
        "Aurora": api.register(
            "Aurora Youth Collective", communities=["youth"], roles=["speaker"], region="North"
        ),
        "birch": api.register(
            "birch Street Elders", communities=["elders"], roles=["advisory_member"], region="South"
        ),
        "Cedar": api.register(
            "Cedar Tenants Union",
            communities=["tenants", "youth"],
            roles=["grant_reviewer", "speaker"],
            region="North",
        ),
        "Delta": api.register("Delta Researchers", kind="individual", roles=["technical_expert"]),
        "Elm": api.register("Elm Advocacy", communities=["tenants"], region="South"),
    }
    api.append(ids["Aurora"], "stage_changed", "2025-02-01T10:00:00Z", stage="partnership")
    api.append(
        ids["Aurora"], "meeting_held", "2025-03-01T10:00:00Z", kind="check_in", location="theirs"
    )
    api.append(
        ids["Cedar"], "contact_made", "2025-02-01T10:00:00Z", channel="phone", direction="inbound"
    )
    api.append(
        ids["Delta"], "meeting_held", "2025-01-10T10:00:00Z", kind="planning", location="virtual"
    )
    api.append(ids["Elm"], "stage_changed", "2025-02-01T10:00:00Z", stage="paused")
    api.append(
        ids["Elm"],
        "trust_breach_recorded",
        "2025-02-02T10:00:00Z",
        severity="minor",
        caused_by="us",
        description="Missed their meeting.",
    )
    return Portfolio(ids)


AS_OF_PORTFOLIO = "2025-03-15"


def test_the_partner_list_carries_each_partners_health(api: Api, portfolio: Portfolio) -> None:
    listed = api.read("/v1/partners", as_of=AS_OF_PORTFOLIO)

    assert listed["sort"] == "name"
    assert listed["next_cursor"] is None
    health = {row["name"]: row["health"] for row in listed["partners"]}
    # Only cadence has something to measure (SPEC §3), and trust for Elm's open minor breach:
    # d = 14, 42 and 64 days since the last touch against a 30-day cadence, and 68 days since
    # registration for the never touched: 100·(90 - d)/60 past 30 days.
    assert health == {
        "Aurora Youth Collective": {"score": 100, "band": "thriving"},
        "birch Street Elders": {"score": 37, "band": "at_risk"},  # 36.67
        "Cedar Tenants Union": {"score": 80, "band": "thriving"},
        "Delta Researchers": {"score": 43, "band": "at_risk"},  # 43.33
        "Elm Advocacy": {"score": 58, "band": "steady"},  # (25·36.67 + 20·85) / 45 = 58.15
    }
    aurora = listed["partners"][0]
    assert (aurora["id"], aurora["stage"], aurora["last_touch_at"]) == (
        portfolio.ids["Aurora"],
        "partnership",
        "2025-03-01T10:00:00.000000Z",
    )


PARTNER_FILTERS: list[tuple[dict[str, str], list[str]]] = [
    ({"stage": "partnership"}, ["Aurora Youth Collective"]),
    ({"stage": "paused"}, ["Elm Advocacy"]),
    ({"stage": "prospect"}, ["birch Street Elders", "Cedar Tenants Union", "Delta Researchers"]),
    ({"community": "youth"}, ["Aurora Youth Collective", "Cedar Tenants Union"]),
    ({"community": "tenants", "stage": "paused"}, ["Elm Advocacy"]),
    ({"role": "speaker"}, ["Aurora Youth Collective", "Cedar Tenants Union"]),
    ({"role": "technical_expert"}, ["Delta Researchers"]),
    ({"q": "TENANTS"}, ["Cedar Tenants Union"]),
    ({"q": "el"}, ["birch Street Elders", "Delta Researchers", "Elm Advocacy"]),
    ({"q": "nobody"}, []),
    ({"community": "youth", "role": "grant_reviewer"}, ["Cedar Tenants Union"]),
    ({"community": "youth", "sort": "health"}, ["Aurora Youth Collective", "Cedar Tenants Union"]),
]


def test_the_partner_list_filters_by_stage_community_role_and_name(
    api: Api, portfolio: Portfolio
) -> None:
    for params, expected in PARTNER_FILTERS:
        listed = api.read("/v1/partners", as_of=AS_OF_PORTFOLIO, **params)
        assert names(listed["partners"]) == expected, params


PARTNER_SORTS = {
    ("name", None): ["Aurora", "birch", "Cedar", "Delta", "Elm"],
    ("name", "desc"): ["Elm", "Delta", "Cedar", "birch", "Aurora"],
    ("health", None): ["Aurora", "Cedar", "Elm", "Delta", "birch"],
    ("health", "asc"): ["birch", "Delta", "Elm", "Cedar", "Aurora"],  # weakest first
    # longest without a two-way touch first; the never touched first of all
    ("last_touch", None): ["birch", "Elm", "Delta", "Cedar", "Aurora"],
    ("last_touch", "desc"): ["Aurora", "Cedar", "Delta", "Elm", "birch"],
}


def test_the_partner_list_sorts_and_its_cursor_walks_every_page_once(
    api: Api, portfolio: Portfolio
) -> None:
    for (sort, order), expected in PARTNER_SORTS.items():
        asked: dict[str, Any] = {"as_of": AS_OF_PORTFOLIO, "sort": sort}
        if order is not None:
            asked["order"] = order
        whole = api.read("/v1/partners", **asked)
        assert whole["sort"] == sort
        natural = {"name": "asc", "health": "desc", "last_touch": "asc"}[sort]
        assert whole["order"] == (order or natural)
        assert [row["id"] for row in whole["partners"]] == [portfolio.ids[n] for n in expected]

        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {**asked, "limit": 2}
            if cursor is not None:
                params["cursor"] = cursor
            page = api.read("/v1/partners", **params)
            pages.append([row["id"] for row in page["partners"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(pages) < 5, "the cursor never ends"
        assert [len(p) for p in pages] == [2, 2, 1], sort
        walked = [pid for p in pages for pid in p]
        assert walked == [portfolio.ids[n] for n in expected], sort
        assert len(set(walked)) == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"stage": "dormant"}, "stage"),
        ({"sort": "size"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"cursor": "!!not-a-cursor!!"}, "cursor"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"as_of": "3/1/2025"}, "as_of"),  # day or month first: only a CSV file told the order
    ],
)
def test_the_partner_list_refuses_bad_parameters(
    api: Api, params: dict[str, Any], field: str
) -> None:
    api.assert_problem(api.get("/v1/partners", **params), 422, field)


# ---- idempotency ------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_and_body_returns_the_first_response_and_records_once(
    api: Api,
) -> None:
    pid = api.register("Eastside", occurred_at=T0)
    body = {
        "type": "commitment_made",
        "owed_by": "us",
        "description": "Stipend",
        "due_on": "2025-03-01",
        "resource": "financial",
        "amount": "150",
        "currency": "USD",
        "occurred_at": T1,
    }
    headers = {**api.steward, "Idempotency-Key": "stipend-2025-01"}
    first = api.client.post(f"/v1/partners/{pid}/events", json=body, headers=headers)
    api.append(
        pid, "contact_made", T2, channel="email", direction="outbound"
    )  # something else happens
    retry = api.client.post(
        f"/v1/partners/{pid}/events", json=dict(reversed(list(body.items()))), headers=headers
    )

    assert first.status_code == retry.status_code == 201
    assert retry.content == first.content
    assert first.json()["version"] == 2
    assert uuid.UUID(first.json()["commitment_id"])  # made by the server, once
    assert api.event_count() == 3
    commitments = api.read(f"/v1/partners/{pid}/commitments", as_of="2025-02-01")["commitments"]
    assert [c["commitment_id"] for c in commitments] == [first.json()["commitment_id"]]


def test_registering_twice_with_one_key_registers_one_partner(api: Api) -> None:
    body = {"name": "Eastside", "kind": "organization", "occurred_at": T0}
    headers = {**api.steward, "Idempotency-Key": "register-eastside"}
    first = api.client.post("/v1/partners", json=body, headers=headers)
    again = api.client.post("/v1/partners", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert len(api.read("/v1/partners")["partners"]) == 1
    assert api.event_count() == 1


def test_the_same_key_with_another_body_is_422_and_records_nothing(api: Api) -> None:
    pid = api.register("Eastside", occurred_at=T0)
    headers = {**api.steward, "Idempotency-Key": "k-1"}
    body = {"type": "contact_made", "channel": "email", "direction": "inbound", "occurred_at": T1}
    assert (
        api.client.post(f"/v1/partners/{pid}/events", json=body, headers=headers).status_code == 201
    )

    other_body = api.client.post(
        f"/v1/partners/{pid}/events", json={**body, "channel": "phone"}, headers=headers
    )
    api.assert_problem(other_body, 422, "Idempotency-Key")
    other_partner = api.register("Westside", occurred_at=T0)
    other_route = api.client.post(
        f"/v1/partners/{other_partner}/events", json=body, headers=headers
    )
    api.assert_problem(other_route, 422, "Idempotency-Key")
    registering = api.client.post(
        "/v1/partners", json={"name": "Northside", "kind": "organization"}, headers=headers
    )
    api.assert_problem(registering, 422, "Idempotency-Key")
    assert api.event_count() == 3
    api.assert_problem(
        api.client.post(
            f"/v1/partners/{pid}/events", json=body, headers={**api.steward, "Idempotency-Key": ""}
        ),
        422,
        "Idempotency-Key",
    )


def test_idempotency_keys_belong_to_the_token_name(api: Api) -> None:
    pid = api.register("Eastside", occurred_at=T0)
    body = {"type": "contact_made", "channel": "email", "direction": "inbound", "occurred_at": T1}
    key = {"Idempotency-Key": "daily-sync"}
    ana_again = api.token("steward", STEWARD_NAME)  # a second token with the same name
    cy = api.token("steward", "steward:cy")

    by_ana = api.client.post(
        f"/v1/partners/{pid}/events", json=body, headers={**api.steward, **key}
    )
    by_cy = api.client.post(f"/v1/partners/{pid}/events", json=body, headers={**cy, **key})
    by_ana_again = api.client.post(
        f"/v1/partners/{pid}/events", json=body, headers={**ana_again, **key}
    )

    assert (by_ana.status_code, by_cy.status_code, by_ana_again.status_code) == (201, 201, 201)
    assert (by_ana.json()["version"], by_cy.json()["version"]) == (2, 3)
    assert by_ana_again.json() == by_ana.json()
    assert [e["recorded_by"] for e in api.log()] == [STEWARD_NAME, STEWARD_NAME, "steward:cy"]


# ---- read-your-writes -------------------------------------------------------------------------


def test_a_read_right_after_a_write_sees_it(api: Api) -> None:
    pid = api.register("Eastside", occurred_at=None)  # recorded as happening now
    assert api.read(f"/v1/partners/{pid}")["name"] == "Eastside"
    due = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()

    for n in range(1, 4):
        made = api.client.post(
            f"/v1/partners/{pid}/events",
            json={
                "type": "commitment_made",
                "owed_by": "us",
                "description": f"#{n}",
                "due_on": due,
                "resource": "time",
            },
            headers=api.steward,
        ).json()
        commitments = api.read(f"/v1/partners/{pid}/commitments")
        assert [c["description"] for c in commitments["commitments"]] == [
            f"#{i}" for i in range(1, n + 1)
        ]
        assert commitments["figures"]["us"]["open"] == n
        timeline = api.read(f"/v1/partners/{pid}/timeline")
        assert timeline["events"][-1]["hash"] == made["hash"]
        assert timeline["position"] == made["position"]

    before_touch = api.read(f"/v1/partners/{pid}/health")["components"][0]
    assert before_touch["name"] == "cadence"
    assert before_touch["explanation"].startswith("No two-way contact")
    api.client.post(
        f"/v1/partners/{pid}/events",
        json={"type": "contact_made", "channel": "phone", "direction": "inbound"},
        headers=api.steward,
    )
    cadence = api.read(f"/v1/partners/{pid}/health")["components"][0]
    assert (cadence["name"], cadence["score"]) == ("cadence", 100.0)
    assert cadence["explanation"].startswith("Last two-way contact 0 days ago")
    assert api.read(f"/v1/partners/{pid}")["version"] == 5


# ---- accountability -----------------------------------------------------------------------------


@pytest.fixture
def two_partners(api: Api) -> dict[str, str]:
    coalition = api.form_coalition("Valley Coalition")
    other = api.form_coalition("Hill Coalition")
    p1 = api.register("Aurora", occurred_at=T0)
    p2 = api.register("Birch", occurred_at=T0)
    made = "2025-01-10T10:00:00Z"

    def commit(pid: str, cid: str, side: str, due: str, coalition_id: str | None) -> None:
        api.append(
            pid,
            "commitment_made",
            made,
            commitment_id=cid,
            owed_by=side,
            description=cid,
            due_on=due,
            resource="time",
            coalition_id=coalition_id,
        )

    commit(p1, "c1", "us", "2025-02-01", coalition)
    commit(p1, "c2", "partner", "2025-02-01", coalition)
    commit(p1, "c3", "us", "2025-06-01", None)
    commit(p2, "c4", "partner", "2025-02-15", other)
    commit(p2, "c5", "us", "2025-02-01", coalition)
    api.append(p1, "commitment_fulfilled", "2025-01-25T10:00:00Z", commitment_id="c2")
    api.append(p2, "commitment_fulfilled", "2025-02-03T10:00:00Z", commitment_id="c5")
    return {"coalition": coalition, "other": other, "p1": p1, "p2": p2}


def test_accountability_sums_both_sides_and_lists_what_is_overdue(
    api: Api, two_partners: dict[str, str]
) -> None:
    ids = two_partners
    report = api.read("/v1/accountability", as_of="2025-03-01")

    assert (report["coalition_id"], report["owed_by"]) == (None, None)
    assert report["us"] == figures(
        made=3,
        open=1,
        overdue=1,
        fulfilled_late=1,
        fulfilled=1,
        fulfilment_rate=0.5,
        on_time_rate=0.0,
    )
    assert report["partner"] == figures(
        made=2, overdue=1, fulfilled_on_time=1, fulfilled=1, fulfilment_rate=0.5, on_time_rate=0.5
    )
    assert report["overdue"] == [
        {
            "partner_id": ids["p1"],
            "name": "Aurora",
            "commitment_id": "c1",
            "owed_by": "us",
            "description": "c1",
            "due_on": "2025-02-01",
            "overdue_days": 28,
        },
        {
            "partner_id": ids["p2"],
            "name": "Birch",
            "commitment_id": "c4",
            "owed_by": "partner",
            "description": "c4",
            "due_on": "2025-02-15",
            "overdue_days": 14,
        },
    ]


def test_accountability_filters_by_coalition_and_side(
    api: Api, two_partners: dict[str, str]
) -> None:
    ids = two_partners
    in_coalition = api.read("/v1/accountability", as_of="2025-03-01", coalition_id=ids["coalition"])
    assert in_coalition["coalition_id"] == ids["coalition"]
    assert in_coalition["us"] == figures(
        made=2, overdue=1, fulfilled_late=1, fulfilled=1, fulfilment_rate=0.5, on_time_rate=0.0
    )
    assert in_coalition["partner"] == figures(
        made=1, fulfilled_on_time=1, fulfilled=1, fulfilment_rate=1.0, on_time_rate=1.0
    )
    assert [c["commitment_id"] for c in in_coalition["overdue"]] == ["c1"]

    theirs = api.read("/v1/accountability", as_of="2025-03-01", owed_by="partner")
    assert theirs["owed_by"] == "partner"
    assert "us" not in theirs
    assert theirs["partner"]["made"] == 2
    assert [c["commitment_id"] for c in theirs["overdue"]] == ["c4"]

    both = api.read(
        "/v1/accountability", as_of="2025-03-01", owed_by="partner", coalition_id=ids["other"]
    )
    assert both["partner"] == figures(made=1, overdue=1, fulfilment_rate=0.0, on_time_rate=0.0)
    assert [c["commitment_id"] for c in both["overdue"]] == ["c4"]

    early = api.read("/v1/accountability", as_of="2025-01-20")
    assert early["overdue"] == []
    assert early["us"] == figures(made=3, open=3)


# ---- coalitions ---------------------------------------------------------------------------------


def test_forming_listing_and_showing_coalitions(api: Api) -> None:
    response = api.client.post(
        "/v1/coalitions",
        json={
            "name": "Valley Coalition",
            "shared_vision": "Homes for all.",
            "agreed_measures": ["units"],
            "occurred_at": "2025-01-02T09:00:00Z",
        },
        headers=api.steward,
    )
    assert response.status_code == 201
    formed = response.json()
    assert set(formed) == {"id", "version", "position", "hash", "type", "data"}
    assert (formed["version"], formed["position"], formed["type"]) == (1, 1, "coalition_formed")
    assert formed["data"] == {
        "name": "Valley Coalition",
        "shared_vision": "Homes for all.",
        "agreed_measures": ["units"],
    }
    cid = formed["id"]
    api.form_coalition("Alpine Alliance", occurred_at="2025-03-01T09:00:00Z")

    listed = api.read("/v1/coalitions")
    assert [c["name"] for c in listed["coalitions"]] == ["Alpine Alliance", "Valley Coalition"]
    assert [c["name"] for c in api.read("/v1/coalitions", as_of="2025-02-01")["coalitions"]] == [
        "Valley Coalition"
    ]
    shown = api.read(f"/v1/coalitions/{cid}")
    assert {
        k: shown[k]
        for k in (
            "id",
            "name",
            "shared_vision",
            "agreed_measures",
            "formed_at",
            "version",
            "members",
        )
    } == {
        "id": cid,
        "name": "Valley Coalition",
        "shared_vision": "Homes for all.",
        "agreed_measures": ["units"],
        "formed_at": "2025-01-02T09:00:00.000000Z",
        "version": 1,
        "members": [],
    }
    (logged,) = [e for e in api.log() if e["stream_id"] == cid]
    assert logged["stream_type"] == "coalition"
    assert logged["hash"] == formed["hash"] == spec_hash(logged)


def test_partners_join_and_leave_a_coalition(api: Api) -> None:
    cid = api.form_coalition("Valley Coalition")
    aurora = api.register("Aurora", occurred_at=T0)
    birch = api.register("Birch", occurred_at=T0)

    joined = api.client.post(
        f"/v1/coalitions/{cid}/members",
        json={"partner_id": birch, "occurred_at": "2025-01-08T09:00:00Z"},
        headers=api.steward,
    )
    assert joined.status_code == 201
    body = joined.json()
    assert (body["coalition_id"], body["version"], body["type"], body["data"]) == (
        cid,
        2,
        "member_joined",
        {"partner_id": birch},
    )
    assert body["position"] == 4
    api.join(cid, aurora, occurred_at="2025-01-09T09:00:00Z")
    members = api.read(f"/v1/coalitions/{cid}")["members"]
    assert members == [
        {"partner_id": aurora, "name": "Aurora", "joined_at": "2025-01-09T09:00:00.000000Z"},
        {"partner_id": birch, "name": "Birch", "joined_at": "2025-01-08T09:00:00.000000Z"},
    ]

    left = api.client.delete(
        f"/v1/coalitions/{cid}/members/{birch}",
        params={"reason": "Merged into another group.", "occurred_at": "2025-02-01T09:00:00Z"},
        headers=api.steward,
    )
    assert left.status_code == 201
    assert (left.json()["type"], left.json()["version"], left.json()["data"]) == (
        "member_left",
        4,
        {"partner_id": birch, "reason": "Merged into another group."},
    )
    assert [m["name"] for m in api.read(f"/v1/coalitions/{cid}")["members"]] == ["Aurora"]
    assert [
        m["name"] for m in api.read(f"/v1/coalitions/{cid}", as_of="2025-01-31")["members"]
    ] == ["Aurora", "Birch"]
    again = api.client.delete(f"/v1/coalitions/{cid}/members/{birch}", headers=api.steward)
    api.assert_problem(again, 409, birch)
    rejoined = api.client.post(
        f"/v1/coalitions/{cid}/members", json={"partner_id": birch}, headers=api.steward
    )
    assert rejoined.status_code == 201
    assert api.event_count() == 7


# ---- agenda and review --------------------------------------------------------------------------


@pytest.fixture
def agenda_ledger(api: Api) -> dict[str, str]:
    ids = {
        "Aurora": api.register("Aurora", occurred_at=T0),
        "Birch": api.register("Birch", occurred_at=T0),
        "Cedar": api.register("Cedar", occurred_at="2025-02-20T10:00:00Z"),
        "Delta": api.register("Delta", occurred_at=T0),
    }
    api.append(
        ids["Aurora"], "meeting_held", "2025-02-10T10:00:00Z", kind="check_in", location="ours"
    )
    api.append(ids["Delta"], "stage_changed", "2025-02-01T10:00:00Z", stage="ended")

    def commit(pid: str, cid: str, side: str, due: str) -> None:
        api.append(
            pid,
            "commitment_made",
            T1,
            commitment_id=cid,
            owed_by=side,
            description=f"{cid} work",
            due_on=due,
            resource="deliverable",
        )

    commit(ids["Aurora"], "A-SOON", "us", "2025-03-10")
    commit(ids["Aurora"], "A-LATER", "us", "2025-04-30")
    commit(ids["Birch"], "B-LATE", "partner", "2025-02-20")
    commit(ids["Birch"], "B-DONE", "us", "2025-02-20")
    api.append(ids["Birch"], "commitment_fulfilled", "2025-02-19T10:00:00Z", commitment_id="B-DONE")
    return ids


def test_the_agenda_lists_checkins_and_commitments_due_within_n_days_or_overdue(
    api: Api, agenda_ledger: dict[str, str]
) -> None:
    ids = agenda_ledger
    agenda = api.read("/v1/agenda", as_of="2025-03-01")

    assert (agenda["within_days"], agenda["as_of"]) == (14, "2025-03-01T23:59:59.999999Z")
    assert agenda["checkins"] == [
        {"partner_id": ids["Birch"], "name": "Birch", "due_on": "2025-02-05", "overdue_days": 24},
        {
            "partner_id": ids["Aurora"],
            "name": "Aurora",
            "due_on": "2025-03-12",
            "overdue_days": -11,
        },
    ]
    assert agenda["commitments"] == [
        {
            "partner_id": ids["Birch"],
            "name": "Birch",
            "commitment_id": "B-LATE",
            "owed_by": "partner",
            "description": "B-LATE work",
            "due_on": "2025-02-20",
            "overdue_days": 9,
        },
        {
            "partner_id": ids["Aurora"],
            "name": "Aurora",
            "commitment_id": "A-SOON",
            "owed_by": "us",
            "description": "A-SOON work",
            "due_on": "2025-03-10",
            "overdue_days": -9,
        },
    ]

    wider = api.read("/v1/agenda", as_of="2025-03-01", within_days=60)
    assert [c["name"] for c in wider["checkins"]] == ["Birch", "Aurora", "Cedar"]
    assert [c["commitment_id"] for c in wider["commitments"]] == ["B-LATE", "A-SOON", "A-LATER"]
    overdue_only = api.read("/v1/agenda", as_of="2025-03-01", within_days=0)
    assert [c["name"] for c in overdue_only["checkins"]] == ["Birch"]
    assert [c["commitment_id"] for c in overdue_only["commitments"]] == ["B-LATE"]


def test_the_agenda_as_icalendar_parses_and_carries_the_same_items(
    api: Api, agenda_ledger: dict[str, str]
) -> None:
    response = api.get("/v1/agenda.ics", as_of="2025-03-01")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar = icalendar.Calendar.from_ical(response.content)
    events = sorted(
        ((e.decoded("dtstart"), str(e["summary"])) for e in calendar.walk("VEVENT")),
        key=lambda pair: (pair[0], pair[1]),
    )
    # What is past due shows on the feed's day, 1 March, where people look (issue 13).
    assert events == [
        (date(2025, 3, 1), "Overdue since 2025-02-05: Check in with Birch"),
        (date(2025, 3, 1), "Overdue since 2025-02-20: Birch owes us: B-LATE work"),
        (date(2025, 3, 10), "We owe Aurora: A-SOON work"),
        (date(2025, 3, 12), "Check in with Aurora"),
    ]
    uids = [str(e["uid"]) for e in calendar.walk("VEVENT")]
    assert len(set(uids)) == 4
    again = api.get("/v1/agenda.ics", as_of="2025-03-01")
    assert again.content == response.content
    wider = icalendar.Calendar.from_ical(
        api.get("/v1/agenda.ics", as_of="2025-03-01", within_days=60).content
    )
    assert len(wider.walk("VEVENT")) == 6


def test_the_review_shows_the_portfolio_and_who_is_over_engaged_or_neglected(api: Api) -> None:
    asked = api.register(
        "Asked A Lot",
        communities=["youth"],
        roles=["speaker"],
        region="North",
        occurred_at="2025-01-06T10:00:00Z",
    )
    quiet = api.register(
        "Quiet One", communities=["youth", "elders"], occurred_at="2025-01-06T10:00:00Z"
    )
    fine = api.register(
        "Fine Partner",
        roles=["speaker", "consultant"],
        region="North",
        occurred_at="2025-01-06T10:00:00Z",
    )
    api.append(fine, "stage_changed", "2025-02-01T10:00:00Z", stage="partnership")
    api.append(fine, "meeting_held", "2025-04-20T10:00:00Z", kind="check_in", location="ours")
    api.append(asked, "contact_made", "2025-04-25T10:00:00Z", channel="phone", direction="inbound")
    for n, when in enumerate(["2025-02-10", "2025-03-01", "2025-04-01"]):
        api.append(asked, "feedback_received", f"{when}T10:00:00Z", summary=f"#{n}")
    api.append(
        asked,
        "commitment_made",
        "2025-04-02T10:00:00Z",
        owed_by="partner",
        description="Panel",
        due_on="2025-06-01",
        resource="time",
    )
    api.append(asked, "feedback_received", "2025-01-10T10:00:00Z", summary="long ago")

    review = api.read("/v1/review", as_of="2025-05-01")

    assert review["partners"] == 3
    assert review["by_community"] == {"elders": 1, "youth": 2}
    assert review["by_role"] == {"consultant": 1, "speaker": 2}
    assert review["by_region"] == {"(none)": 1, "North": 2}
    assert review["by_stage"] == {"partnership": 1, "prospect": 2}
    assert review["over_engaged"] == [
        {"partner_id": asked, "name": "Asked A Lot", "asks_90_days": 4}
    ]
    assert review["neglected"] == [
        {
            "partner_id": quiet,
            "name": "Quiet One",
            "last_touch_on": None,
            "days_since": 115,
            "cadence_days": 30,
        }
    ]
    earlier = api.read("/v1/review", as_of="2025-03-01")
    assert earlier["over_engaged"] == []
    assert [n["name"] for n in earlier["neglected"]] == []


# ---- the global log and its audit ---------------------------------------------------------------


def test_the_global_log_pages_by_position_in_the_exact_shape_of_spec_5(api: Api) -> None:
    cid = api.form_coalition("Valley Coalition")
    pid = api.register("Eastside", occurred_at=T0)
    api.append(pid, "payment_made", T1, amount="12.5", currency="USD", purpose="reimbursement")
    api.join(cid, pid)
    api.append(pid, "contact_made", T2, channel="letter", direction="outbound", summary="Café ☕")

    pages = []
    after = 0
    while True:
        page = api.read("/v1/events", after=after, limit=2)
        pages.append([e["position"] for e in page["events"]])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert pages == [[1, 2], [3, 4], [5]]
    assert api.read("/v1/events", after=5)["events"] == []

    events = api.read("/v1/events")["events"]
    assert [(e["stream_type"], e["type"], e["version"]) for e in events] == [
        ("coalition", "coalition_formed", 1),
        ("partner", "partner_registered", 1),
        ("partner", "payment_made", 2),
        ("coalition", "member_joined", 2),
        ("partner", "contact_made", 3),
    ]
    for event in events:
        assert set(event) - {"disclosed"} == LOG_KEYS
        assert event["hash"] == spec_hash(event)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event["recorded_at"])
    assert events[2]["data"] == {
        "amount": "12.50",
        "currency": "USD",
        "purpose": "reimbursement",
        "commitment_id": None,
    }
    assert events[3]["data"] == {"partner_id": pid}
    assert shown(events[4])["summary"] == "Café ☕"
    assert "summary" not in events[4]["data"]  # a salted commitment in its place (issue 16)
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_stream.setdefault(event["stream_id"], []).append(event)
    for chain in by_stream.values():
        assert chain[0]["prev_hash"] == ZEROS
        assert [e["prev_hash"] for e in chain[1:]] == [e["hash"] for e in chain[:-1]]


VERIFY_KEYS = ("ok", "events_checked", "position", "digest", "problems", "unchecked")


def test_audit_verify_recomputes_the_digest_over_the_whole_log(api: Api) -> None:
    empty = api.verified()
    assert {k: empty[k] for k in VERIFY_KEYS} == {
        "ok": True,
        "events_checked": 0,
        "position": 0,
        "digest": ZEROS,
        "problems": [],
        "unchecked": [],
    }
    pid = api.register("Eastside", occurred_at=T0)
    api.append(pid, "stage_changed", T1, stage="exploring")
    api.append(pid, "checkin_cadence_agreed", T2, every_days=14)

    verify = api.verified()

    hashes = [e["hash"] for e in api.log()]
    assert {k: verify[k] for k in VERIFY_KEYS} == {
        "ok": True,
        "events_checked": 3,
        "position": 3,
        "digest": chain_digest(hashes),
        "problems": [],
        "unchecked": [],
    }
    assert (verify["log_position"], verify["current"]) == (3, True)
    assert verify["started_at"] <= verify["verified_at"]
    # Anyone who may read it gets the same run at once.
    assert api.get("/v1/audit/verify", headers=api.viewer).json()["digest"] == verify["digest"]


def test_healthz_answers_without_a_token(api: Api, settings: Settings) -> None:
    pid = api.register("Eastside", occurred_at=T0)
    api.append(pid, "stage_changed", T1, stage="exploring")
    response = api.client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    # The start-up verification (api.verifying) may or may not have finished yet.
    verification = body.pop("verification")
    assert verification["ok"] in (True, None), verification
    assert body == {
        "status": "ok",
        "store": "postgres" if settings.database_url else "sqlite",
        "log_position": 2,
        "views_position": 2,
        "heavy": {
            "report": {"running": 0, "limit": 2, "abandoned": 0},
            "history": {"running": 0, "limit": 4, "abandoned": 0},
        },
        "parts": {"writer": "running", "views": "ok", "views_kept_by": "this process"},
        "lag": {"events": 0, "seconds": 0.0, "late_writes": 0},
    }
