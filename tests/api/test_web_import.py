"""The Import page, the partners file download and contacts in the profile form (issue 12),
without a browser, on both stores (the browser story is tests/ui/test_import_page.py).
"""

from __future__ import annotations

import html
import re

import pytest

from api.importing import template_csv
from tests.api.conftest import Api

CSRF = re.compile(r'name="csrftoken" value="([^"]+)"')


def _steward_session(api: Api) -> str:
    """Sign the test client in as a steward; the CSRF token its forms carry."""
    token = api.app.state.services.tokens.issue("steward", "web-importer")
    assert api.client.get(f"/signin?token={token}", follow_redirects=False).status_code == 303
    page = api.client.get("/import")
    assert page.status_code == 200
    found = CSRF.search(page.text)
    assert found is not None
    return found.group(1)


def _upload(api: Api, csrf: str, kind: str, name: str, content: str, date_order: str = "") -> str:
    response = api.client.post(
        "/import",
        data={"csrftoken": csrf, "kind": kind, "date_order": date_order},
        files={"file": (name, content.encode("utf-8"), "text/csv")},
    )
    assert response.status_code in (200, 422), response.text
    return response.text if response.status_code == 200 else "422:" + response.text


def _cells(page: str) -> list[list[str]]:
    table = page.split('<table id="import-problems">', 1)[1].split("</table>", 1)[0]
    table = table.split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td>(.*?)</td>", r, re.S)
        ]
        for r in rows
    ]


def test_a_file_with_problems_shows_them_all_in_a_table_and_records_nothing(api: Api) -> None:
    api.register("José Ramírez")
    csrf = _steward_session(api)
    before = api.event_count()
    content = (
        "partner,type,occurred_at,channel,direction,colour\r\n"
        "Jose Ramirez,contact_made,2026-01-05T12:00:00Z,phone,inbound,red\r\n"
        "Jsoe Ramirez,contact_made,2026-01-06T12:00:00Z,pigeon,inbound,\r\n"
    )

    page = _upload(api, csrf, "events", "events.csv", content)

    assert page.startswith("422:")
    assert "Nothing was recorded: 3 problems in events.csv" in html.unescape(page)
    cells = _cells(page)
    assert [c[:3] for c in cells] == [
        ["1", "colour", "colour"],
        ["3", "partner", "Jsoe Ramirez"],
        ["3", "channel", "pigeon"],
    ]
    assert cells[0][3].startswith("is not a column of an events file; the columns are partner,")
    assert cells[1] == [
        "3",
        "partner",
        "Jsoe Ramirez",
        "no partner named 'Jsoe Ramirez' is on record; did you mean 'José Ramírez'?",
    ]
    assert cells[2][:3] == ["3", "channel", "pigeon"]
    assert api.event_count() == before


def test_a_clean_file_is_recorded_once_with_a_link_to_each_partner(api: Api) -> None:
    csrf = _steward_session(api)

    first = _upload(api, csrf, "partners", "partners.csv", template_csv("partners"), "mdy")
    events = _upload(api, csrf, "events", "events.csv", template_csv("events"))
    again = _upload(api, csrf, "events", "events.csv", template_csv("events"))

    assert "Recorded 4 events for 2 partners." in first
    found = re.findall(r'<li><a href="(/partners/[^"]+)">([^<]+)</a>', first)
    links = {name: href for href, name in found}
    assert set(links) == {"Eastside Tenants Union", html.escape("José Ramírez")}
    assert "Recorded 2 events for 1 partners." in events
    assert "2 rows already recorded, 0 new. Recorded 0 events for 0 partners." in again
    partner = api.client.get(links["Eastside Tenants Union"]).text
    assert "office@eastsidetenants.example.org" in partner
    assert "Rosa Delgado, Organizer" in partner
    assert api.event_count() == 6


def test_dates_either_way_round_are_asked_about_in_the_pages_words_then_read(api: Api) -> None:
    """A file of month-first dates: the page asks for the order with its own control (not the
    CLI's --date-order), then reads them, and says which history predates a registration."""
    api.register("Eastside Tenants Union", occurred_at="2026-11-01T12:00:00Z")
    csrf = _steward_session(api)
    before = api.event_count()
    content = (
        "partner,type,occurred_at,channel,direction\r\n"
        "Eastside Tenants Union,contact_made,3/15/2026,phone,inbound\r\n"
        "Eastside Tenants Union,contact_made,3/20/2026 14:30,email,outbound\r\n"
    )

    asked = _upload(api, csrf, "events", "history.csv", content)

    assert asked.startswith("422:")
    assert 'id="date-order-advice"' in asked
    assert "--date-order" not in asked
    assert [row[:2] for row in _cells(asked)] == [["2", "occurred_at"], ["3", "occurred_at"]]
    assert api.event_count() == before

    read = _upload(api, csrf, "events", "history.csv", content, date_order="mdy")

    assert 'id="import-summary"' in read
    assert 'id="import-earlier-history"' in read
    assert "Eastside Tenants Union: 2 events before its registration on 2026-11-01" in read
    days = [e["occurred_at"][:10] for e in api.log()[-2:]]
    assert days == ["2026-03-15", "2026-03-20"]


@pytest.mark.parametrize("token", [None, "forged"])
def test_an_upload_without_this_pages_token_is_refused_and_records_nothing(
    api: Api, token: str | None
) -> None:
    _steward_session(api)
    data = {"kind": "partners"} if token is None else {"csrftoken": token, "kind": "partners"}

    response = api.client.post(
        "/import",
        data=data,
        files={"file": ("p.csv", template_csv("partners").encode(), "text/csv")},
    )

    assert response.status_code == 403
    assert "security token" in response.text
    assert api.event_count() == 0


def test_an_upload_that_is_not_utf8_says_how_to_save_it(api: Api) -> None:
    csrf = _steward_session(api)
    response = api.client.post(
        "/import",
        data={"csrftoken": csrf, "kind": "partners"},
        files={"file": ("p.csv", "name,kind\nCafé,organization\n".encode("cp1252"), "text/csv")},
    )
    assert response.status_code == 422
    assert "save it as &#39;CSV UTF-8&#39;" in response.text


def test_the_partners_file_download_goes_back_in_as_it_came_out(api: Api) -> None:
    csrf = _steward_session(api)
    _upload(api, csrf, "partners", "partners.csv", template_csv("partners"))

    download = api.client.get("/export/partners.csv")

    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    text = download.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("name,kind,roles,")
    assert "Rosa Delgado; Sam Ortiz" in text


def _profile_form(api: Api, partner: str) -> tuple[str, str]:
    """The profile form's page and its idempotency key."""
    form = api.client.get(f"/partners/{partner}/record/profile_updated").text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form)
    assert key is not None
    return form, key.group(1)


def test_contacts_are_edited_in_the_profile_form_and_shown_on_the_partner_page(api: Api) -> None:
    partner = api.register(
        "Harbor Tenants Union", contacts={"emails": ["old@example.org"], "phones": ["555 0100"]}
    )
    csrf = _steward_session(api)
    form, key = _profile_form(api, partner)
    assert "old@example.org</textarea>" in form  # the form starts from what is on record

    refused = api.client.post(
        f"/partners/{partner}/record/profile_updated",
        data={
            "csrftoken": csrf,
            "idempotency_key": key,
            "contacts.emails": "old@example.org\nnot-an-address",
            "contacts.people": "Ana Ruiz; Director; ana@example.org; (559) 555-0101",
        },
    )
    recorded = api.client.post(
        f"/partners/{partner}/record/profile_updated",
        data={
            "csrftoken": csrf,
            "idempotency_key": key + "-2",
            "contacts.emails": "old@example.org\nnew@example.org",
            "contacts.phones": "555 0100",
            "contacts.people": "Ana Ruiz; Director; ana@example.org; (559) 555-0101\nBen Lee",
        },
        follow_redirects=False,
    )

    assert refused.status_code == 422
    assert "line 2: &#39;not-an-address&#39; is not an email address" in refused.text
    assert recorded.status_code == 303, recorded.text
    contacts = api.read(f"/v1/partners/{partner}")["contacts"]
    assert contacts == {
        "emails": ["old@example.org", "new@example.org"],
        "phones": ["555 0100"],
        "address": None,
        "people": [
            {
                "name": "Ana Ruiz",
                "role": "Director",
                "email": "ana@example.org",
                "phone": "(559) 555-0101",
            },
            {"name": "Ben Lee", "role": None, "email": None, "phone": None},
        ],
    }
    page = api.client.get(f"/partners/{partner}").text
    assert '<a href="mailto:new@example.org">new@example.org</a>' in page
    assert "Ana Ruiz, Director" in page


def test_a_profile_form_that_leaves_contacts_as_they_were_records_none(api: Api) -> None:
    partner = api.register("Harbor Tenants Union", contacts={"emails": ["a@example.org"]})
    csrf = _steward_session(api)
    _form, key = _profile_form(api, partner)

    response = api.client.post(
        f"/partners/{partner}/record/profile_updated",
        data={
            "csrftoken": csrf,
            "idempotency_key": key,
            "region": "Harbor",
            "contacts.emails": "a@example.org",
        },
        follow_redirects=False,
    )

    assert response.status_code == 303, response.text
    last = api.log()[-1]
    assert last["type"] == "profile_updated"
    assert "contacts" not in last["data"]
    assert last["data"]["region"] == "Harbor"
