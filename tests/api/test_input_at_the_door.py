"""Issue 10: every input checked at the door, the same way on both stores.

Each refusal is a 422 problem naming the ``field`` at fault, and records nothing; each example
of the issue is a case here (items 1, 2, 8, 9, 10, 12, 14), run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.api.conftest import Api

T0 = "2025-01-06T10:00:00Z"
T1 = "2025-01-10T10:00:00Z"

# Refused in every text field: C0 controls but HT, LF and CR; DEL; C1 controls.
CONTROLS = ["\x00", "\x01", "\x07", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]


def refused(api: Api, response: Any, field: str) -> dict[str, Any]:
    body = api.assert_problem(response, 422)
    assert body["field"] == field, body
    assert field in [e["field"] for e in body["errors"]], body
    return body


@pytest.fixture(scope="module")
def partner_id(shared_api: Api) -> str:
    return shared_api.register("Door Test Partner", occurred_at=T0)


# ---- 1. control characters in every text field, API bodies --------------------------------


def test_a_nul_in_a_partner_name_is_refused_and_the_ledger_stays_healthy(api: Api) -> None:
    response = api.client.post(
        "/v1/partners", json={"name": "A\u0000B", "kind": "organization"}, headers=api.steward
    )

    refused(api, response, "name")
    assert api.event_count() == 0
    # The views were never handed anything they cannot take: writes and health carry on.
    partner_id = api.register("Plain Name")
    assert api.read(f"/v1/partners/{partner_id}")["name"] == "Plain Name"
    health = api.client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["views_position"] == health["log_position"] == 1


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "Eastside{c}Union"}, "name"),
        ({"region": "North{c}"}, "region"),
        ({"roles": ["speaker", "{c}"]}, "roles.1"),
        ({"communities": ["ten{c}ants"]}, "communities.0"),
        ({"preferences": {"language": "e{c}s"}}, "preferences.language"),
        ({"preferences": {"accessibility": ["cap{c}tions"]}}, "preferences.accessibility.0"),
    ],
)
def test_a_control_character_in_a_registration_is_refused(
    shared_api: Api, control: str, fields: dict[str, Any], field: str
) -> None:
    api = shared_api
    before = api.event_count()
    body = {"name": "Eastside Union", "kind": "organization"}
    for key, value in fields.items():
        body[key] = _fill(value, control)

    response = api.client.post("/v1/partners", json=body, headers=api.steward)

    refused(api, response, field)
    assert api.event_count() == before


def _fill(value: Any, control: str) -> Any:
    if isinstance(value, str):
        return value.replace("{c}", control)
    if isinstance(value, list):
        return [_fill(v, control) for v in value]
    return {k: _fill(v, control) for k, v in value.items()}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (
            {"type": "contact_made", "channel": "email", "direction": "inbound", "summary": "\x00"},
            "summary",
        ),
        (
            {
                "type": "meeting_held",
                "kind": "informal",
                "location": "ours",
                "attendees": ["Rosa", "D\x1bv"],
            },
            "attendees.1",
        ),
        (
            {
                "type": "commitment_made",
                "owed_by": "us",
                "description": "Stipend\x07",
                "due_on": "2025-12-31",
                "resource": "time",
            },
            "description",
        ),
        ({"type": "stage_changed", "stage": "exploring", "reason": "\x9b2J"}, "reason"),
        (
            {
                "type": "payment_made",
                "amount": "10.00",
                "currency": "US\x00",
                "purpose": "stipend",
            },
            "currency",
        ),
    ],
    ids=["summary", "attendee", "description", "reason-csi", "currency"],
)
def test_a_control_character_in_an_event_is_refused(
    shared_api: Api, partner_id: str, event: dict[str, Any], field: str
) -> None:
    api = shared_api
    before = api.event_count()

    response = api.client.post(
        f"/v1/partners/{partner_id}/events", json={**event, "occurred_at": T1}, headers=api.steward
    )

    refused(api, response, field)
    assert api.event_count() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Valley\x00Coalition"}, "name"),
        ({"name": "Valley Coalition", "shared_vision": "\x1b]0;pwned\x07"}, "shared_vision"),
        ({"name": "Valley Coalition", "agreed_measures": ["ok", "\x7f"]}, "agreed_measures.1"),
    ],
)
def test_a_control_character_in_a_coalition_is_refused(
    shared_api: Api, body: dict[str, Any], field: str
) -> None:
    api = shared_api
    before = api.event_count()

    response = api.client.post("/v1/coalitions", json=body, headers=api.steward)

    refused(api, response, field)
    assert api.event_count() == before


def test_tab_line_feed_and_carriage_return_stay_allowed_in_text(
    shared_api: Api, partner_id: str
) -> None:
    summary = "Line one\r\nLine two\tindented"

    recorded = shared_api.append(
        partner_id, "contact_made", T1, channel="email", direction="inbound", summary=summary
    )

    assert recorded["data"]["summary"] == summary


# ---- 2. query parameters ------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["name", "health", "last_touch"])
def test_searching_for_a_nul_is_refused(shared_api: Api, sort: str) -> None:
    response = shared_api.get("/v1/partners", q="\x00", sort=sort)

    refused(shared_api, response, "q")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/partners", {"community": "ten\x00ants"}, "community"),
        ("/v1/partners", {"role": "\x1b"}, "role"),
        ("/v1/partners", {"cursor": "\x00"}, "cursor"),
        ("/v1/partners", {"as_of": "2025-01-01\x00"}, "as_of"),
        ("/v1/agenda", {"as_of": "\x7f"}, "as_of"),
        ("/v1/review", {"as_of": "\x85"}, "as_of"),
        ("/v1/accountability", {"owed_by": "us\x00"}, "owed_by"),
        ("/v1/events", {"after": "1\x00"}, "after"),
    ],
)
def test_a_control_character_in_any_query_parameter_is_refused(
    shared_api: Api, path: str, params: dict[str, str], field: str
) -> None:
    response = shared_api.client.get(path, params=params, headers=shared_api.steward)

    refused(shared_api, response, field)


def test_a_control_character_in_a_timeline_query_is_refused(
    shared_api: Api, partner_id: str
) -> None:
    api = shared_api
    refused(api, api.get(f"/v1/partners/{partner_id}/timeline", types="\x00"), "types")
    path = f"/v1/partners/{partner_id}/timeline"
    refused(api, api.client.get(path, params={"from": "\x00"}, headers=api.steward), "from")


def test_a_control_character_in_a_leaving_reason_is_refused(shared_api: Api) -> None:
    api = shared_api
    coalition_id = api.form_coalition("Leaving Coalition")
    member = api.register("Leaving Member")
    api.join(coalition_id, member)
    before = api.event_count()

    response = api.client.delete(
        f"/v1/coalitions/{coalition_id}/members/{member}",
        params={"reason": "moved\x00away"},
        headers=api.steward,
    )

    refused(api, response, "reason")
    assert api.event_count() == before


# ---- 8 and 12. money: one grammar, never rounded -------------------------------------------


@pytest.mark.parametrize(
    "amount",
    [
        "1__0",
        "_1",
        "1_",
        "1_000.5_0",
        " 10",
        "10 ",
        "1e3",
        "+5",
        "-5",
        "10.",
        ".5",
        "1,000.00",
        "\u0661\u0660",  # Arabic-Indic digits: int() would read them
        "NaN",
        "Infinity",
        "",
        10,
    ],
)
def test_an_amount_outside_the_grammar_is_refused(
    shared_api: Api, partner_id: str, amount: Any
) -> None:
    api = shared_api
    before = api.event_count()
    body = {"type": "payment_made", "amount": amount, "currency": "USD", "purpose": "stipend"}

    response = api.client.post(
        f"/v1/partners/{partner_id}/events", json={**body, "occurred_at": T1}, headers=api.steward
    )

    refused(api, response, "amount")
    assert api.event_count() == before


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1.000000000000000000000000000001", "USD"), ("1.5", "JPY"), ("0.0001", "KWD")],
)
def test_more_places_than_the_currency_has_is_refused_never_rounded(
    shared_api: Api, partner_id: str, amount: str, currency: str
) -> None:
    api = shared_api
    before = api.event_count()
    body = {"type": "payment_made", "amount": amount, "currency": currency, "purpose": "grant"}

    response = api.client.post(
        f"/v1/partners/{partner_id}/events", json={**body, "occurred_at": T1}, headers=api.steward
    )

    refused(api, response, "amount")
    assert "decimal places" in response.json()["detail"]
    assert api.event_count() == before


def test_a_commitment_amount_follows_the_same_grammar(shared_api: Api, partner_id: str) -> None:
    api = shared_api
    body = {
        "type": "commitment_made",
        "owed_by": "us",
        "description": "Stipend",
        "due_on": "2025-12-31",
        "resource": "financial",
        "amount": "1__0",
        "currency": "USD",
        "occurred_at": T1,
    }

    response = api.client.post(f"/v1/partners/{partner_id}/events", json=body, headers=api.steward)

    refused(api, response, "amount")


# ---- 9. dates are 2026-03-15, moments 2026-03-15 14:30 (domain.dates) ------------------------


@pytest.mark.parametrize(
    "due_on", ["1798761600", "20270105", 1798761600, "2027-1-5", "2027-01-05T00:00:00Z"]
)
def test_a_due_date_is_a_yyyy_mm_dd_string_only(
    shared_api: Api, partner_id: str, due_on: Any
) -> None:
    api = shared_api
    before = api.event_count()
    body = {
        "type": "commitment_made",
        "owed_by": "us",
        "description": "Report",
        "due_on": due_on,
        "resource": "deliverable",
        "occurred_at": T1,
    }

    response = api.client.post(f"/v1/partners/{partner_id}/events", json=body, headers=api.steward)

    problem = refused(api, response, "due_on")
    assert "like 2026-03-15" in problem["detail"]
    assert api.event_count() == before


@pytest.mark.parametrize("occurred_at", ["1798761600", 1798761600, "20250110T100000Z"])
def test_an_instant_is_never_read_from_a_number(
    shared_api: Api, partner_id: str, occurred_at: Any
) -> None:
    api = shared_api
    before = api.event_count()
    body = {"type": "stage_changed", "stage": "exploring", "occurred_at": occurred_at}

    response = api.client.post(f"/v1/partners/{partner_id}/events", json=body, headers=api.steward)

    refused(api, response, "occurred_at")
    assert api.event_count() == before


@pytest.mark.parametrize("as_of", ["20260331", "1798761600"])
def test_an_as_of_is_never_read_from_digits_alone(shared_api: Api, as_of: str) -> None:
    refused(shared_api, shared_api.get("/v1/partners", as_of=as_of), "as_of")


# ---- 10. a name given twice in a JSON body ------------------------------------------------


def _post_raw(api: Api, path: str, text: str) -> Any:
    headers = {**api.steward, "Content-Type": "application/json"}
    return api.client.post(path, content=text.encode(), headers=headers)


def test_a_name_given_twice_in_a_registration_is_refused(shared_api: Api) -> None:
    api = shared_api
    before = api.event_count()

    response = _post_raw(
        api, "/v1/partners", '{"name":"Dup A","name":"Dup B","kind":"organization"}'
    )

    body = refused(api, response, "name")
    assert "RFC 7493" in body["detail"]
    assert api.event_count() == before


def test_two_type_keys_in_an_event_are_refused(shared_api: Api, partner_id: str) -> None:
    api = shared_api
    before = api.event_count()
    text = (
        '{"type":"stage_changed","stage":"exploring",'
        '"type":"contact_made","channel":"email","direction":"inbound"}'
    )

    response = _post_raw(api, f"/v1/partners/{partner_id}/events", text)

    refused(api, response, "type")
    assert api.event_count() == before


def test_a_name_given_twice_at_any_depth_is_refused_with_its_path(shared_api: Api) -> None:
    api = shared_api
    before = api.event_count()
    text = '{"name":"Nested","kind":"organization","preferences":{"language":"es","language":"en"}}'

    response = _post_raw(api, "/v1/partners", text)

    refused(api, response, "preferences.language")
    assert api.event_count() == before


# ---- 14. ids ignore case; names refuse bidirectional controls --------------------------------


def test_upper_case_ids_in_paths_name_the_same_partner(shared_api: Api) -> None:
    api = shared_api
    partner_id = api.register("Case Partner", occurred_at=T0)
    upper = partner_id.upper()
    assert upper != partner_id

    shown = api.read(f"/v1/partners/{upper}")
    recorded = api.append(upper, "contact_made", T1, channel="email", direction="inbound")

    assert shown["id"] == partner_id
    assert recorded["partner_id"] == partner_id
    for suffix in ("timeline", "health", "commitments", "health/history"):
        assert api.read(f"/v1/partners/{upper}/{suffix}")["partner_id"] == partner_id


def test_upper_case_ids_in_paths_name_the_same_coalition(shared_api: Api) -> None:
    api = shared_api
    coalition_id = api.form_coalition("Case Coalition")
    member = api.register("Case Member", occurred_at=T0)
    upper = coalition_id.upper()

    api.join(upper, member.upper())

    shown = api.read(f"/v1/coalitions/{upper}")
    assert shown["id"] == coalition_id
    assert [m["partner_id"] for m in shown["members"]] == [member]
    assert api.read(f"/v1/coalitions/{upper}/report")["coalition"]["id"] == coalition_id


@pytest.mark.parametrize(
    "bidi",
    ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"],
)
def test_a_bidirectional_control_in_a_name_is_refused(shared_api: Api, bidi: str) -> None:
    api = shared_api
    before = api.event_count()

    partner = api.client.post(
        "/v1/partners",
        json={"name": f"Acme{bidi}Corp", "kind": "organization"},
        headers=api.steward,
    )
    coalition = api.client.post(
        "/v1/coalitions", json={"name": f"{bidi}Valley"}, headers=api.steward
    )

    refused(api, partner, "name")
    refused(api, coalition, "name")
    assert api.event_count() == before


def test_a_bidirectional_control_in_an_id_is_refused(shared_api: Api, partner_id: str) -> None:
    api = shared_api
    body = {
        "type": "feedback_received",
        "feedback_id": "F-\u202e1",
        "summary": "x",
        "occurred_at": T1,
    }

    response = api.client.post(f"/v1/partners/{partner_id}/events", json=body, headers=api.steward)

    refused(api, response, "feedback_id")


def test_free_text_may_keep_bidirectional_controls(shared_api: Api, partner_id: str) -> None:
    summary = "\u2067\u0645\u0631\u062d\u0628\u0627\u2069 said hello"

    recorded = shared_api.append(
        partner_id, "contact_made", T1, channel="email", direction="inbound", summary=summary
    )

    assert recorded["data"]["summary"] == summary


# ---- 6. names compared by Unicode normal form and case; search ignores accents ---------------

NFC_JOSE = "Jos\u00e9 Ram\u00edrez"  # precomposed é and í
NFD_JOSE = "Jose\u0301 Ruiz"  # e + COMBINING ACUTE ACCENT, as macOS types it


@pytest.fixture(scope="module")
def joses(shared_api: Api) -> tuple[str, str]:
    return shared_api.register(NFC_JOSE), shared_api.register(NFD_JOSE)


@pytest.mark.parametrize("sort", ["name", "health", "last_touch"])
@pytest.mark.parametrize(
    "q", ["jose", "JOSE", "Jos\u00e9", "Jose\u0301", "JOS\u00c9", "ram\u00edrez", "ramirez"]
)
def test_search_ignores_case_accents_and_normal_form(
    shared_api: Api, joses: tuple[str, str], sort: str, q: str
) -> None:
    found = shared_api.read("/v1/partners", q=q, sort=sort, limit=200)["partners"]

    names = {p["id"]: p["name"] for p in found}
    expected = (
        {joses[0]: NFC_JOSE}
        if "ram" in q.lower()
        else dict(zip(joses, (NFC_JOSE, NFD_JOSE), strict=True))
    )
    assert names == expected  # and the names come back byte for byte as recorded


def test_a_search_for_another_name_finds_neither(shared_api: Api, joses: tuple[str, str]) -> None:
    found = shared_api.read("/v1/partners", q="josefina")["partners"]

    assert not {p["id"] for p in found} & set(joses)
