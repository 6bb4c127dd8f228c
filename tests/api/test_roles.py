"""Who may do what (SPEC §4): no token or a bad one is 401, the wrong role 403, on every route.

A steward reads and writes everything, a viewer reads everything, and a coalition token reads
its own coalition's report and its current members' health and commitment figures, nothing
else: no timelines, no lists, no log. Refusals are problem+json and record nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.api.conftest import Api

T0 = "2025-01-06T10:00:00Z"
AS_OF = "2025-06-30"


@dataclass(frozen=True)
class Ledger:
    coalition: str
    other_coalition: str
    member: str
    other_member: str
    outsider: str
    former_member: str

    def fill(self, template: str) -> str:
        return template.format(
            cid=self.coalition,
            other_cid=self.other_coalition,
            member=self.member,
            outsider=self.outsider,
        )


@pytest.fixture
def ledger(api: Api) -> Ledger:
    coalition = api.form_coalition("Valley Coalition")
    other = api.form_coalition("Hill Coalition")
    member = api.register("Aurora Youth", occurred_at=T0)
    other_member = api.register("Birch Elders", occurred_at=T0)
    outsider = api.register("Cedar Outsiders", occurred_at=T0)
    former = api.register("Delta Leavers", occurred_at=T0)
    api.join(coalition, member)
    api.join(coalition, former)
    left = api.client.delete(
        f"/v1/coalitions/{coalition}/members/{former}",
        params={"occurred_at": "2025-02-01T09:00:00Z"},
        headers=api.steward,
    )
    assert left.status_code == 201
    api.join(other, other_member)
    for pid in (member, outsider):
        api.append(
            pid,
            "commitment_made",
            "2025-01-10T10:00:00Z",
            owed_by="us",
            description="Stipend",
            due_on="2025-02-01",
            resource="financial",
            amount="150",
            currency="USD",
        )
    return Ledger(coalition, other, member, other_member, outsider, former)


# Every route of SPEC §4 that needs a token: (method, path template, JSON body).
WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/partners", {"name": "New", "kind": "individual"}),
    ("POST", "/v1/partners/{member}/events", {"type": "stage_changed", "stage": "exploring"}),
    ("POST", "/v1/coalitions", {"name": "New Coalition"}),
    ("POST", "/v1/coalitions/{cid}/members", {"partner_id": "{outsider}"}),
    ("DELETE", "/v1/coalitions/{cid}/members/{member}", None),
]
READS = [
    "/v1/partners",
    "/v1/partners/{member}",
    "/v1/partners/{member}/timeline",
    "/v1/partners/{member}/health",
    "/v1/partners/{member}/health/history",
    "/v1/partners/{member}/commitments",
    "/v1/accountability",
    "/v1/coalitions",
    "/v1/coalitions/{cid}",
    "/v1/coalitions/{cid}/report",
    "/v1/coalitions/{cid}/report?format=csv",
    "/v1/agenda",
    "/v1/agenda.ics",
    "/v1/review",
    "/v1/events",
    "/v1/audit/verify",
]


def _send(
    api: Api,
    ledger: Ledger,
    method: str,
    template: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
) -> Any:
    json_body = (
        {k: ledger.fill(v) if isinstance(v, str) else v for k, v in body.items()} if body else None
    )
    return api.client.request(method, ledger.fill(template), json=json_body, headers=headers)


BAD_CREDENTIALS = {
    "no token": {},
    "a token never issued": {"Authorization": "Bearer pl_this-token-was-never-issued"},
    "an empty token": {"Authorization": "Bearer "},
    "another scheme": {"Authorization": "Basic c3Rld2FyZDpzZWNyZXQ="},
    "no scheme": {"Authorization": "pl_no-scheme"},
}


def test_without_a_valid_token_every_route_is_401_and_nothing_is_recorded(
    api: Api, ledger: Ledger
) -> None:
    before = api.event_count()
    for case, headers in BAD_CREDENTIALS.items():
        for method, template, body in WRITES:
            response = _send(api, ledger, method, template, body, headers)
            problem = api.assert_problem(response, 401, "token")
            assert response.headers["www-authenticate"] == "Bearer", (case, method, template)
            assert problem["title"] == "Unauthorized"
        for template in READS:
            response = _send(api, ledger, "GET", template, None, headers)
            api.assert_problem(response, 401, "token")
    assert api.event_count() == before
    assert api.client.get("/healthz").status_code == 200


def test_a_viewer_reads_everything_but_writes_nothing(api: Api, ledger: Ledger) -> None:
    for template in READS:
        response = _send(
            api,
            ledger,
            "GET",
            f"{template}{'&' if '?' in template else '?'}as_of={AS_OF}",
            None,
            api.viewer,
        )
        assert response.status_code == 200, (template, response.text)
    before = api.event_count()
    for method, template, body in WRITES:
        response = _send(api, ledger, method, template, body, api.viewer)
        api.assert_problem(response, 403, "steward")
    assert api.event_count() == before


def test_a_steward_writes_everything(api: Api, ledger: Ledger) -> None:
    for method, template, body in WRITES:
        response = _send(api, ledger, method, template, body, api.steward)
        assert response.status_code == 201, (method, template, response.text)


def test_a_coalition_token_reads_its_report_and_its_members_figures(
    api: Api, ledger: Ledger
) -> None:
    token = api.token("coalition", "coalition:valley", ledger.coalition)

    report = api.get(f"/v1/coalitions/{ledger.coalition}/report", token, as_of=AS_OF)
    assert report.status_code == 200
    body = report.json()
    assert [m["name"] for m in body["members"]] == ["Aurora Youth"]
    assert body["members"][0]["us"]["overdue"] == 1
    as_csv = api.get(f"/v1/coalitions/{ledger.coalition}/report", token, format="csv", as_of=AS_OF)
    assert as_csv.status_code == 200
    assert "Aurora Youth" in as_csv.text

    health = api.get(f"/v1/partners/{ledger.member}/health", token, as_of=AS_OF)
    assert health.status_code == 200
    assert health.json()["partner_id"] == ledger.member
    history = api.get(
        f"/v1/partners/{ledger.member}/health/history",
        token,
        **{"from": "2025-01-01", "to": "2025-03-31"},
    )
    assert history.status_code == 200
    assert [p["as_of"] for p in history.json()["points"]] == [
        "2025-01-31",
        "2025-02-28",
        "2025-03-31",
    ]
    commitments = api.get(f"/v1/partners/{ledger.member}/commitments", token, as_of=AS_OF)
    assert commitments.status_code == 200
    assert commitments.json()["figures"]["us"]["overdue"] == 1

    # The coalition portal (issue 14): its own page, with vision, measures and members.
    page = api.get(f"/v1/coalitions/{ledger.coalition}", token, as_of=AS_OF)
    assert page.status_code == 200, page.text
    shown = page.json()
    assert shown["id"] == ledger.coalition
    assert {"name", "shared_vision", "agreed_measures", "members"} <= set(shown)
    assert [m["partner_id"] for m in shown["members"]] == [ledger.member]
    assert all(m["joined_at"] for m in shown["members"])


NOT_FOR_A_COALITION = [
    "/v1/coalitions/{other_cid}/report",
    "/v1/coalitions/{other_cid}/report?format=md",
    "/v1/partners/{outsider}/health",
    "/v1/partners/{outsider}/commitments",
    "/v1/partners/{outsider}/health/history",
    "/v1/partners/{other_member}/health",
    "/v1/partners/{former}/commitments",
    "/v1/partners/{member}/timeline",
    "/v1/partners/{member}",
    "/v1/partners",
    "/v1/events",
    "/v1/accountability",
    "/v1/accountability?coalition_id={cid}",
    "/v1/coalitions",
    "/v1/coalitions/{other_cid}",
    "/v1/agenda",
    "/v1/agenda.ics",
    "/v1/review",
    "/v1/audit/verify",
]


def test_a_coalition_token_reads_nothing_else(api: Api, ledger: Ledger) -> None:
    token = api.token("coalition", "coalition:valley", ledger.coalition)
    for path in NOT_FOR_A_COALITION:
        url = path.format(
            cid=ledger.coalition,
            other_cid=ledger.other_coalition,
            member=ledger.member,
            other_member=ledger.other_member,
            outsider=ledger.outsider,
            former=ledger.former_member,
        )
        response = api.client.get(url, headers=token)
        api.assert_problem(response, 403, "coalition")


def test_a_coalition_token_writes_nothing(api: Api, ledger: Ledger) -> None:
    token = api.token("coalition", "coalition:valley", ledger.coalition)
    before = api.event_count()
    for method, template, body in WRITES:
        response = _send(api, ledger, method, template, body, token)
        api.assert_problem(response, 403)
    assert api.event_count() == before
