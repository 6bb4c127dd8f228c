"""The web forms take the same path as the JSON API: same models, same words, same idempotency.

Browser stories (tests/ui) drive the pages in Chromium; these check, without a browser, that a
form holds no rule of its own: what it refuses and how it says so come from the API's models
and the aggregates, and a double submit records once.
"""

from __future__ import annotations

import html
import re

import pytest
from pydantic import ValidationError

from api.settings import Settings
from api.web.forms import body_from_form, field_specs
from domain.values import CommitmentMade, MeetingHeld, PartnerRegistered
from tests.api.conftest import Api

CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def test_a_form_has_a_control_for_every_field_of_the_event_in_order() -> None:
    specs = field_specs(CommitmentMade, event_type="commitment_made")
    assert [s.name for s in specs] == list(CommitmentMade.model_fields)
    by_name = {s.name: s for s in specs}
    assert by_name["owed_by"].control == "select"
    assert ("us", "Us") in by_name["owed_by"].options
    assert by_name["due_on"].control == "date"
    assert by_name["amount"].control == "money"
    assert by_name["description"].required
    assert not by_name["commitment_id"].required  # the ledger makes one


def test_nested_preferences_become_dotted_fields_as_the_api_names_them() -> None:
    names = [s.name for s in field_specs(PartnerRegistered, event_type="partner_registered")]
    assert "preferences.channels" in names
    assert "preferences.language" in names


def test_a_submitted_form_becomes_the_json_body_unchanged_but_for_blanks_and_lines() -> None:
    specs = field_specs(MeetingHeld, event_type="meeting_held")
    body = body_from_form(
        specs,
        {"kind": "check_in", "location": "theirs", "summary": "", "attendees": "Rosa\r\n\r\nDev"},
    )
    # A blank optional field is a field not sent; lists are one item per line.
    assert body == {"kind": "check_in", "location": "theirs", "attendees": ["Rosa", "Dev"]}
    data = MeetingHeld.model_validate(body)
    assert data.attendees == ("Rosa", "Dev")


def test_an_amount_is_passed_on_as_typed_for_the_model_to_judge() -> None:
    specs = field_specs(CommitmentMade, event_type="commitment_made")
    body = body_from_form(specs, {"amount": "1,500.00", "owed_by": "us"})
    assert body["amount"] == "1,500.00"  # never "fixed" on the way in
    with pytest.raises(ValidationError) as refused:
        CommitmentMade.model_validate(
            {**body, "description": "x", "due_on": "2026-03-01", "resource": "financial"}
        )
    assert [e["loc"] for e in refused.value.errors()] == [("amount",)]


def _signed_in(api: Api) -> None:
    token = api.app.state.services.tokens.issue("steward", "web-steward")
    response = api.client.get(f"/signin?token={token}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie.replace("httponly", "HttpOnly")
    assert "samesite=strict" in cookie.lower()


def test_a_refused_form_shows_the_apis_words_beside_the_field_and_records_nothing(
    api: Api,
) -> None:
    partner = api.register("Eastside Tenants Union")
    _signed_in(api)
    page = api.client.get(f"/partners/{partner}/record/commitment_made")
    assert page.status_code == 200
    before = api.event_count()
    form = {
        "csrftoken": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
        "idempotency_key": KEY.search(page.text).group(1),  # type: ignore[union-attr]
        "owed_by": "us",
        "description": "Stipend",
        "due_on": "2026-03-01",
        "resource": "financial",
        "amount": "-5",
        "currency": "USD",
        "occurred_at": "2026-01-05T10:00",
    }
    refused = api.client.post(f"/partners/{partner}/record/commitment_made", data=form)
    assert refused.status_code == 422
    assert 'class="field-error"' in refused.text
    json_refusal = api.client.post(
        f"/v1/partners/{partner}/events",
        json={
            "type": "commitment_made",
            "owed_by": "us",
            "description": "Stipend",
            "due_on": "2026-03-01",
            "resource": "financial",
            "amount": "-5",
            "currency": "USD",
            "occurred_at": "2026-01-05T10:00:00Z",
        },
        headers=api.steward,
    )
    words = json_refusal.json()["errors"][0]["message"]
    assert words in html.unescape(refused.text)
    assert api.event_count() == before


def test_a_double_submitted_form_records_once(api: Api) -> None:
    partner = api.register("Northside Youth Collective")
    _signed_in(api)
    page = api.client.get(f"/partners/{partner}/record/contact_made")
    form = {
        "csrftoken": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
        "idempotency_key": KEY.search(page.text).group(1),  # type: ignore[union-attr]
        "channel": "phone",
        "direction": "inbound",
        "summary": "Called about the stipend",
        "occurred_at": "2026-01-05T10:00",
    }
    before = api.event_count()
    first = api.client.post(
        f"/partners/{partner}/record/contact_made", data=form, follow_redirects=False
    )
    again = api.client.post(
        f"/partners/{partner}/record/contact_made", data=form, follow_redirects=False
    )
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert api.event_count() == before + 1


def test_a_form_without_its_csrf_token_is_refused_and_records_nothing(api: Api) -> None:
    partner = api.register("Riverside Health Promoters")
    _signed_in(api)
    api.client.get(f"/partners/{partner}/record/contact_made")  # sets the CSRF cookie
    before = api.event_count()
    refused = api.client.post(
        f"/partners/{partner}/record/contact_made",
        data={"channel": "phone", "direction": "inbound"},
    )
    assert refused.status_code == 403
    assert api.event_count() == before


def test_the_api_docs_load_nothing_from_another_origin(api: Api) -> None:
    for path in ("/docs", "/redoc"):
        page = api.client.get(path)
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources, path
        assert all(s.startswith("/") for s in sources), sources
        for source in sources:
            assert api.client.get(source).status_code == 200, source
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]


def test_pages_show_money_for_people_in_the_ledgers_locale(api: Api) -> None:
    partner = api.register("Westside Youth Council")
    api.append(
        partner,
        "commitment_made",
        "2025-01-10T10:00:00Z",
        commitment_id="C-GRANT",
        owed_by="us",
        description="Youth grant",
        due_on="2025-06-01",
        resource="financial",
        amount="12750.50",
        currency="USD",
    )
    _signed_in(api)

    page = api.client.get(f"/partners/{partner}")

    assert "$12,750.50" in page.text  # en_US, the default (Babel's CLDR data)
    assert api.read(f"/v1/partners/{partner}/commitments")["commitments"][0]["amount"] == (
        "12750.50"  # the API keeps the exact decimal string
    )


def test_an_unknown_locale_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="PLEDGER_LOCALE='xx_QQ'"):
        Settings.from_env({"PLEDGER_LOCALE": "xx_QQ"})
    assert Settings.from_env({"PLEDGER_LOCALE": "es-MX"}).locale == "es_MX"


def test_a_steward_makes_and_revokes_tokens_on_the_tokens_page(api: Api) -> None:
    _signed_in(api)
    page = api.client.get("/tokens")
    assert page.status_code == 200
    form = {
        "csrftoken": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
        "name": "Board member",
        "role": "viewer",
        "expires": "90d",
    }

    made = api.client.post("/tokens", data=form)

    assert made.status_code == 200
    assert made.headers["cache-control"] == "no-store"
    link = re.search(r'value="(http://[^"]+/signin\?token=(pl_[^"]+))"', made.text)
    assert link is not None
    token = link.group(2)
    assert api.client.get("/v1/partners", headers={"Authorization": f"Bearer {token}"}).is_success
    listed = next(t for t in api.app.state.services.tokens.tokens() if t.name == "Board member")
    assert listed.expires_at is not None

    revoked = api.client.post(
        f"/tokens/{listed.token_id}/revoke", data={"csrftoken": form["csrftoken"]}
    )
    assert revoked.status_code == 200  # back on the page, which says so
    assert "Revoked" in revoked.text
    refused = api.client.get("/v1/partners", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    # The page shows the token only once: never again.
    assert token not in api.client.get("/tokens").text


def test_revoking_a_token_ends_its_sign_in_sessions(api: Api) -> None:
    book = api.app.state.services.tokens
    token = book.issue("viewer", "Reader on the web")
    assert api.client.get(f"/signin?token={token}", follow_redirects=False).status_code == 303
    assert api.client.get("/", follow_redirects=False).status_code == 200

    book.revoke("Reader on the web")

    ended = api.client.get("/", follow_redirects=False)
    assert ended.status_code == 303
    assert ended.headers["location"] == "/signin"


def test_a_chosen_entry_to_retract_is_sent_as_a_number() -> None:
    from domain.values import EntryRetracted

    specs = field_specs(
        EntryRetracted, event_type="entry_retracted", choices={"version": [("2", "entry 2")]}
    )
    body = body_from_form(specs, {"version": "2", "reason": "wrong partner"})

    assert body == {"version": 2, "reason": "wrong partner"}
    assert EntryRetracted.model_validate(body).version == 2


def test_signing_out_ends_the_session_on_the_server_too(api: Api) -> None:
    token = api.app.state.services.tokens.issue("viewer", "Shared computer")
    api.client.get(f"/signin?token={token}", follow_redirects=False)
    kept = dict(api.client.cookies)  # a copy of the cookie, as someone might have kept
    page = api.client.get("/")
    assert page.status_code == 200
    csrf = CSRF.search(page.text)
    assert csrf is not None
    assert "Shared computer" in page.text

    api.client.post("/signout", data={"csrftoken": csrf.group(1)}, follow_redirects=False)
    api.client.cookies.clear()
    for name, value in kept.items():
        api.client.cookies.set(name, value)

    again = api.client.get("/", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/signin"
    assert token not in str(kept)  # the cookie names a session, never the token


def test_a_timeline_entry_shows_preferred_channels_in_words(api: Api) -> None:
    """A profile update's preferences read as the profile does ("In person"), not as the
    API's value ("in_person")."""
    partner = api.register("Northside Elders Circle")
    api.append(partner, "profile_updated", "2025-02-01T10:00:00Z",
               preferences={"channels": ["in_person", "phone"]})  # fmt: skip
    _signed_in(api)

    page = api.client.get(f"/partners/{partner}")

    assert page.status_code == 200
    entry = page.text[page.text.index('id="timeline"') :]
    assert "Channels: In person, Phone" in entry
    assert "in_person" not in entry
