"""Issue 10, "Also": arbitrary text at every kind of input, on both stores.

Hypothesis sends strings made of control characters, bidirectional controls, other normal
forms, other scripts' digits, lone combining marks and plain text, at a name, a free-text
field, an amount, a date, an instant and a query parameter, and asserts for each request:
never a 5xx; every refusal a problem+json 4xx naming a field; a refusal records nothing and an
acceptance exactly one event; and the views never fall behind the log.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if TYPE_CHECKING:
    from tests.api.conftest import Api

T1 = "2025-01-10T10:00:00Z"
HOSTILE_CHARS = st.sampled_from(
    [
        *"\x00\x01\x07\x08\t\n\x0b\x0c\r\x1b\x1f\x7f\x80\x85\x9b\x9f",
        *"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200f\ufeff",
        "e\u0301",  # NFD é
        "\u00e9",  # NFC é
        *"\u0661\u0665\u096b\uff15",  # Arabic-Indic, Devanagari, full-width digits
        *"0123456789._-+ eE:TZ",
        *"aZ\u00df\u0130",
    ]
)
TEXTS = st.lists(HOSTILE_CHARS, max_size=12).map("".join) | st.text(max_size=12)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def partner_id(shared_api: Api) -> str:
    return shared_api.register("Fuzz Partner", occurred_at="2025-01-06T10:00:00Z")


def _check(api: Api, before: int, response: Any) -> None:
    assert response.status_code < 500, response.text
    after = api.event_count()
    if response.status_code >= 400:
        body = api.assert_problem(response, response.status_code)
        assert body.get("field") or body["status"] != 422, body
        assert after == before, "a refusal recorded something"
    else:
        assert response.status_code in (200, 201)
        assert after == before + (1 if response.status_code == 201 else 0)
    health = api.client.get("/healthz").json()
    assert health["status"] == "ok", health
    assert health["views_position"] == health["log_position"], health


def _post_event(api: Api, partner_id: str, body: dict[str, Any]) -> Any:
    return api.client.post(
        f"/v1/partners/{partner_id}/events", json={"occurred_at": T1, **body}, headers=api.steward
    )


@FUZZ
@given(text=TEXTS)
def test_any_name(shared_api: Api, text: str) -> None:
    before = shared_api.event_count()
    response = shared_api.client.post(
        "/v1/partners", json={"name": text, "kind": "individual"}, headers=shared_api.steward
    )
    _check(shared_api, before, response)


@FUZZ
@given(text=TEXTS)
def test_any_free_text(shared_api: Api, partner_id: str, text: str) -> None:
    before = shared_api.event_count()
    body = {"type": "contact_made", "channel": "email", "direction": "inbound", "summary": text}
    _check(shared_api, before, _post_event(shared_api, partner_id, body))


@FUZZ
@given(text=TEXTS | st.from_regex(r"[0-9]{1,30}(\.[0-9]{1,30})?", fullmatch=True))
def test_any_amount(shared_api: Api, partner_id: str, text: str) -> None:
    before = shared_api.event_count()
    body = {"type": "payment_made", "amount": text, "currency": "USD", "purpose": "grant"}
    response = _post_event(shared_api, partner_id, body)
    _check(shared_api, before, response)
    if response.status_code == 201:  # the same value as sent, never rounded
        assert Decimal(response.json()["data"]["amount"]) == Decimal(text)


@FUZZ
@given(text=TEXTS | st.dates().map(str))
def test_any_date(shared_api: Api, partner_id: str, text: str) -> None:
    before = shared_api.event_count()
    body = {"type": "agreement_signed", "title": "MOU", "kind": "mou", "effective_on": text}
    _check(shared_api, before, _post_event(shared_api, partner_id, body))


@FUZZ
@given(text=TEXTS)
def test_any_instant(shared_api: Api, partner_id: str, text: str) -> None:
    before = shared_api.event_count()
    body = {"type": "stage_changed", "stage": "exploring", "occurred_at": text}
    _check(shared_api, before, _post_event(shared_api, partner_id, body))


@FUZZ
@given(text=TEXTS, name=st.sampled_from(["q", "community", "role", "as_of", "cursor"]))
def test_any_query_parameter(shared_api: Api, text: str, name: str) -> None:
    before = shared_api.event_count()
    response = shared_api.client.get(
        "/v1/partners", params={name: text}, headers=shared_api.steward
    )
    _check(shared_api, before, response)
