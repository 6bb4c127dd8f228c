"""A partner's own view (issue 14 item 4): its promises both ways, payments to it, thanks and
outcomes shared with it, the cadence; nothing internal and nothing about anyone else."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import Api

MEETING_NOTE = "Internal: they seemed unhappy with the director"
BREACH_NOTE = "Internal: we lost their paperwork"


@pytest.fixture
def shared(api: Api) -> dict[str, str]:
    partner = api.register("Rosa Delgado", kind="individual")
    other = api.register("Someone Else")
    coalition = api.form_coalition("Valley Coalition")
    api.join(coalition, partner)
    for owed_by, cid, description in (
        ("us", "C-STIPEND", "Stipend for the advisory panel"),
        ("partner", "C-REVIEW", "Review the outreach plan"),
    ):
        api.append(
            partner,
            "commitment_made",
            "2025-01-10T10:00:00Z",
            commitment_id=cid,
            owed_by=owed_by,
            description=description,
            due_on="2025-02-01",
            resource="financial",
            amount="150.00" if owed_by == "us" else None,
            currency="USD" if owed_by == "us" else None,
        )
    api.append(
        partner, "payment_made", "2025-01-20T10:00:00Z", amount="150.00", currency="USD",
        purpose="stipend", commitment_id="C-STIPEND",
    )  # fmt: skip
    api.append(partner, "commitment_fulfilled", "2025-01-20T11:00:00Z", commitment_id="C-STIPEND")
    api.append(partner, "thanks_expressed", "2025-01-21T10:00:00Z", form="note", note="Internal")
    api.append(
        partner, "meeting_held", "2025-01-22T10:00:00Z", kind="check_in", location="theirs",
        summary=MEETING_NOTE,
    )  # fmt: skip
    api.append(
        partner, "trust_breach_recorded", "2025-01-23T10:00:00Z", severity="minor",
        caused_by="us", description=BREACH_NOTE,
    )  # fmt: skip
    api.append(partner, "outcome_shared", "2025-01-25T10:00:00Z", summary="Meetings moved to 6pm")
    token = api.app.state.services.tokens.issue("partner", "partner: Rosa", partner_id=partner)
    return {"partner": partner, "other": other, "coalition": coalition, "token": token}


def test_a_partner_token_reads_its_own_commitments_and_nothing_else(
    api: Api, shared: dict[str, str]
) -> None:
    token = {"Authorization": f"Bearer {shared['token']}"}
    own = api.client.get(f"/v1/partners/{shared['partner']}/commitments", headers=token)
    assert own.status_code == 200, own.text
    assert [c["commitment_id"] for c in own.json()["commitments"]] == ["C-STIPEND", "C-REVIEW"]
    for path in (
        f"/v1/partners/{shared['partner']}/health",
        f"/v1/partners/{shared['partner']}/health/history",
        f"/v1/partners/{shared['partner']}/timeline",
        f"/v1/partners/{shared['partner']}",
        f"/v1/partners/{shared['other']}/commitments",
        f"/v1/partners/{shared['other']}/shared",
        f"/v1/coalitions/{shared['coalition']}",
        f"/v1/coalitions/{shared['coalition']}/report",
        "/v1/partners",
        "/v1/coalitions",
        "/v1/events",
        "/v1/agenda",
        "/v1/accountability",
        "/v1/review",
        "/v1/audit/verify",
    ):
        api.assert_problem(api.client.get(path, headers=token), 403, "partner")
    before = api.event_count()
    refused = api.client.post(
        f"/v1/partners/{shared['partner']}/events",
        json={"type": "contact_made", "channel": "phone", "direction": "inbound"},
        headers=token,
    )
    api.assert_problem(refused, 403)
    assert api.event_count() == before


def test_a_partner_token_reads_over_the_api_what_its_page_shows(
    api: Api, shared: dict[str, str]
) -> None:
    """SPEC §4: the partner role reads payments, thanks, outcomes and cadence, not only
    commitments, and its UI shows no more than the API gives it (SPEC §8)."""
    token = {"Authorization": f"Bearer {shared['token']}"}
    upper = shared["partner"].upper()  # ids ignore case (RFC 4122 §3)

    answer = api.client.get(f"/v1/partners/{upper}/shared", headers=token)

    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["partner_id"] == shared["partner"]
    assert view["name"] == "Rosa Delgado"
    assert [c["commitment_id"] for c in view["commitments"]] == ["C-STIPEND", "C-REVIEW"]
    assert view["commitments"][0]["status"] == "fulfilled_on_time"
    assert view["payments"] == [
        {
            "paid_on": "2025-01-20",
            "amount": "150.00",
            "currency": "USD",
            "purpose": "stipend",
            "commitment_id": "C-STIPEND",
        }
    ]
    assert view["thanks"] == [{"on": "2025-01-21", "form": "note"}]
    assert view["outcomes"] == [{"on": "2025-01-25", "summary": "Meetings moved to 6pm"}]
    for hidden in (MEETING_NOTE, BREACH_NOTE, "Internal", "health", "Someone Else"):
        assert hidden not in answer.text, hidden
    before = api.client.get(
        f"/v1/partners/{shared['partner']}/shared?as_of=2025-01-15", headers=token
    )
    assert before.json()["payments"] == []
    assert before.json()["thanks"] == []


def test_the_partners_page_shows_promises_payments_and_thanks_but_nothing_internal(
    api: Api, shared: dict[str, str]
) -> None:
    signed_in = api.client.get(f"/signin?token={shared['token']}", follow_redirects=True)

    assert signed_in.url.path == "/our-promises"
    page = signed_in.text
    for shown in (
        "Stipend for the advisory panel",
        "Review the outreach plan",
        "$150.00",
        "Kept on time",
        "Meetings moved to 6pm",
        "every 30 days",
    ):
        assert shown in page, shown
    for hidden in (MEETING_NOTE, BREACH_NOTE, "Someone Else", "Valley Coalition", "Health"):
        assert hidden not in page, hidden
    for path in ("/partners", f"/partners/{shared['partner']}", "/agenda", "/audit", "/tokens"):
        assert api.client.get(path).status_code == 403, path
    assert api.client.get(f"/coalitions/{shared['coalition']}").status_code == 403


def test_a_steward_makes_a_partner_link_from_the_partner_page(
    api: Api, shared: dict[str, str]
) -> None:
    steward = api.app.state.services.tokens.issue("steward", "web-steward")
    api.client.get(f"/signin?token={steward}")
    page = api.client.get(f"/partners/{shared['partner']}")
    csrf = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
    assert csrf is not None

    made = api.client.post(f"/partners/{shared['partner']}/share", data={"csrftoken": csrf[1]})

    assert made.status_code == 200
    link = re.search(r'value="http://[^"]+/signin\?token=(pl_[^"]+)"', made.text)
    assert link is not None
    api.client.post("/signout", data={"csrftoken": csrf[1]})
    opened = api.client.get(f"/signin?token={link[1]}", follow_redirects=True)
    assert opened.url.path == "/our-promises"
    assert "Rosa Delgado" in opened.text
