"""The partner page and its record forms (issue 9 item 4: partner page, record forms).

Each story makes a partner of its own over the JSON API (dated in the past where the story needs
history), then does the everyday action through the pages alone, and checks what the page shows
against what the API answers for the same question.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Locator

from tests.ui.support import (
    Site,
    Ui,
    days_ago,
    field_errors,
    fill_form,
    post_forms,
    unique,
)

pytestmark = pytest.mark.slow


def open_record_form(ui: Ui, partner_id: str, type_: str) -> Locator:
    """From the partner page, follow the record link for this event type; the form."""
    ui.goto(f"/partners/{partner_id}")
    link = ui.page.locator(f'a[href$="/partners/{partner_id}/record/{type_}"]')
    assert link.count() >= 1, f"the partner page has no link to record {type_}"
    ui.submit(link.first)
    assert urlsplit(ui.page.url).path == f"/partners/{partner_id}/record/{type_}", ui.page.url
    return ui.form_of("Record")


def record(ui: Ui, partner_id: str, type_: str, values: dict[str, str]) -> None:
    """Fill and send a record form; the partner page shows again."""
    form = open_record_form(ui, partner_id, type_)
    fill_form(form, values)
    ui.submit(ui.button("Record"))
    assert urlsplit(ui.page.url).path == f"/partners/{partner_id}", (
        f"after recording {type_} the browser is on {ui.page.url}: {ui.main_text()[:800]}"
    )


def component_text(ui: Ui, name: str) -> str:
    return ui.page.locator(f"#component-{name}").inner_text()


def health_score(ui: Ui) -> int:
    return int(ui.page.locator("#health-score").inner_text().strip())


def timeline_text(ui: Ui) -> str:
    return ui.page.locator("#timeline").inner_text()


def commitment_row(ui: Ui, commitment_id: str) -> str:
    row = ui.page.locator("#commitments tr", has_text=commitment_id)
    assert row.count() == 1, f"{commitment_id}: {row.count()} rows in #commitments"
    return row.inner_text()


def test_log_a_meeting_and_see_the_cadence_sentence_change(ui: Ui, site: Site) -> None:
    partner = site.partner(
        unique("Harbor Food Bank"), occurred_at=f"{days_ago(70).isoformat()}T12:00:00Z"
    )
    ui.goto(f"/partners/{partner}")
    before = site.sentence(partner, "cadence")
    assert before in component_text(ui, "cadence")
    assert health_score(ui) == site.health(partner)["score"]

    form = open_record_form(ui, partner, "meeting_held")
    when = form.locator('[name="occurred_at"]')
    assert when.get_attribute("type") == "datetime-local"
    assert ui.page.get_by_label("When it happened").count() == 1
    default = when.input_value()
    assert default[:10] == datetime.now(UTC).date().isoformat(), (
        f"occurred_at defaults to {default}"
    )
    summary = unique("Check-in at the pantry")
    fill_form(form, {"kind": "check_in", "location": "theirs", "summary": summary})
    ui.submit(ui.button("Record"))

    assert urlsplit(ui.page.url).path == f"/partners/{partner}"
    assert summary in timeline_text(ui)
    after = site.sentence(partner, "cadence")
    assert after != before
    assert after in component_text(ui, "cadence")
    assert before not in component_text(ui, "cadence")
    assert health_score(ui) == site.health(partner)["score"]
    assert ui.page.locator("#health-band").inner_text().strip() != ""
    [meeting] = site.timeline(partner, types="meeting_held")
    assert meeting["data"]["summary"] == summary
    assert meeting["data"]["kind"] == "check_in"


def test_make_and_fulfil_a_commitment(ui: Ui, site: Site) -> None:
    partner = site.partner(
        unique("Westside Clinic"), occurred_at=f"{days_ago(60).isoformat()}T12:00:00Z"
    )
    commitment = unique("C-UI").replace(" ", "-")
    record(
        ui,
        partner,
        "commitment_made",
        {
            "occurred_at": f"{days_ago(40).isoformat()}T10:00",
            "commitment_id": commitment,
            "owed_by": "us",
            "description": "Stipend for the health fair volunteers",
            "due_on": days_ago(20).isoformat(),
            "resource": "financial",
            "amount": "250.00",
            "currency": "USD",
        },
    )
    assert "Overdue" in commitment_row(ui, commitment)
    overdue_score = health_score(ui)
    assert overdue_score == site.health(partner)["score"]
    assert site.sentence(partner, "our_reliability") in component_text(ui, "our_reliability")
    [made] = site.timeline(partner, types="commitment_made")
    assert (made["data"]["amount"], made["data"]["currency"]) == ("250.00", "USD")

    record(ui, partner, "commitment_fulfilled", {"commitment_id": commitment, "note": "Paid."})
    row = commitment_row(ui, commitment)
    assert "Fulfilled late" in row
    assert "Overdue" not in row
    fulfilled_score = health_score(ui)
    assert fulfilled_score == site.health(partner)["score"]
    assert fulfilled_score > overdue_score
    assert site.sentence(partner, "our_reliability") in component_text(ui, "our_reliability")


def test_retract_an_entry(ui: Ui, site: Site) -> None:
    partner = site.partner(
        unique("Northside Mutual Aid"), occurred_at=f"{days_ago(80).isoformat()}T12:00:00Z"
    )
    meeting = site.record(
        partner,
        "meeting_held",
        kind="planning",
        location="ours",
        summary="Planning the winter drive (recorded for the wrong partner)",
    )
    version = meeting["version"]
    ui.goto(f"/partners/{partner}")
    counted = site.sentence(partner, "cadence")
    assert counted in component_text(ui, "cadence")
    entry = ui.page.locator(f"#entry-{version}")
    assert "Planning the winter drive" in entry.inner_text()
    registration = ui.page.locator("#entry-1")
    assert registration.get_by_role("link", name="Retract").count() == 0, (
        "a registration cannot be retracted; it should offer no Retract link"
    )

    ui.submit(entry.get_by_role("link", name="Retract"))
    path = urlsplit(ui.page.url)
    assert path.path == f"/partners/{partner}/record/entry_retracted"
    assert parse_qs(path.query).get("version") == [str(version)]
    form = ui.form_of("Record")
    assert form.locator('[name="version"]').input_value() == str(version)
    fill_form(form, {"reason": "Recorded for the wrong partner."})
    ui.submit(ui.button("Record"))

    assert urlsplit(ui.page.url).path == f"/partners/{partner}"
    entry = ui.page.locator(f"#entry-{version}")
    assert "retracted" in (entry.get_attribute("class") or "").split()
    assert "Retracted" in entry.inner_text()
    assert entry.get_by_role("link", name="Retract").count() == 0
    now = site.sentence(partner, "cadence")
    assert now != counted, "a retracted meeting still counts in the API"
    assert now in component_text(ui, "cadence")
    assert [e["retracted"] for e in site.timeline(partner, types="meeting_held")] == [True]


def test_view_the_partner_as_of_a_past_date(ui: Ui, site: Site) -> None:
    partner = site.partner(unique("Eastside Tenants"), occurred_at="2025-01-06T15:00:00Z")
    summary = unique("Listening session at their hall")
    record(
        ui,
        partner,
        "meeting_held",
        {
            "occurred_at": "2025-02-10T18:00",
            "kind": "listening_session",
            "location": "theirs",
            "summary": summary,
        },
    )
    assert summary in timeline_text(ui)

    for day, shows in [("2025-02-01", False), ("2025-03-01", True)]:
        ui.goto(f"/partners/{partner}")
        form = ui.page.locator("form").filter(has=ui.page.get_by_label("As of"))
        as_of = ui.page.get_by_label("As of")
        assert as_of.get_attribute("type") == "date"
        as_of.fill(day)
        ui.submit(form.get_by_role("button", name="Show"))
        assert parse_qs(urlsplit(ui.page.url).query).get("as_of") == [day], ui.page.url
        banner = ui.page.locator("#as-of-banner")
        assert f"As it stood on {day}" in banner.inner_text()
        assert (summary in timeline_text(ui)) is shows
        assert health_score(ui) == site.health(partner, as_of=day)["score"]
        assert site.sentence(partner, "cadence", as_of=day) in component_text(ui, "cadence")
        # The past cannot be written to: no record forms or links while looking back.
        writes = [a for a in post_forms(ui.page) if not a.endswith("/signout")]
        assert writes == [], f"forms that write on a page as of {day}: {writes}"
        record_links = ui.page.locator(f'a[href*="/partners/{partner}/record/"]')
        assert record_links.count() == 0, "record or retract links on a page as of a past date"

    ui.goto(f"/partners/{partner}")
    assert ui.page.locator("#as-of-banner").count() == 0


def test_a_refused_form_shows_each_problem_beside_its_field(ui: Ui, site: Site) -> None:
    partner = site.partner(unique("Valley Arts Collective"))
    before = site.position()
    form = open_record_form(ui, partner, "commitment_made")
    description = "Print the flyers for the spring fair"
    bad_due = days_ago(10).isoformat()
    fill_form(
        form,
        {
            "owed_by": "us",
            "description": description,
            "due_on": bad_due,
            "resource": "deliverable",
        },
    )
    ui.submit(ui.button("Record"), expect=422)

    errors = field_errors(ui.page)
    assert list(errors) == ["due_on"], f"field errors: {errors}"
    alert = ui.page.get_by_role("alert")
    assert alert.count() >= 1, "no error summary (role=alert)"
    assert alert.first.inner_text().strip(), "an empty error summary"
    # In the words the API uses for the same refusal.
    refused = site.api.call(
        "POST",
        f"/v1/partners/{partner}/events",
        422,
        json={
            "type": "commitment_made",
            "owed_by": "us",
            "description": description,
            "due_on": bad_due,
            "resource": "deliverable",
        },
    ).json()
    messages = [p["message"] for p in refused.get("errors", []) if p.get("field") == "due_on"]
    assert messages, refused
    assert any(m in errors["due_on"] or errors["due_on"] in m for m in messages), (
        f"the page says {errors['due_on']!r}; the API says {messages}"
    )
    # What was typed is still there, to correct rather than retype.
    form = ui.form_of("Record")
    assert form.locator('[name="description"]').input_value() == description
    assert site.events_after(before) == []


def test_a_stale_page_is_told_and_records_nothing(ui: Ui, site: Site) -> None:
    partner = site.partner(unique("Lakeside Library Friends"))
    form = open_record_form(ui, partner, "contact_made")
    assert form.locator('[name="expected_version"]').input_value() == "1"
    # Someone else records meanwhile.
    site.record(partner, "contact_made", channel="email", direction="inbound", summary="Hello")
    before = site.position()
    fill_form(
        form, {"channel": "phone", "direction": "outbound", "summary": "Called about the fair"}
    )
    ui.submit(ui.button("Record"), expect=409)
    assert "Someone recorded something" in ui.main_text()
    assert site.events_after(before) == []


def test_a_double_submit_records_once(ui: Ui, site: Site) -> None:
    partner = site.partner(unique("Old Town Choir"))
    form = open_record_form(ui, partner, "contact_made")
    summary = unique("Asked about rehearsal space")
    fill_form(form, {"channel": "email", "direction": "inbound", "summary": summary})
    sent: dict[str, str | float | bool] = dict(ui.form_fields(form))
    assert sent.get("idempotency_key"), f"the form carries no idempotency key: {sent}"
    assert sent.get("csrftoken"), f"the form carries no CSRF token: {sent}"
    action: str = form.evaluate("f => f.action")

    # An impatient double click ...
    with ui.page.expect_navigation():
        ui.button("Record").dblclick()
    ui.audit()
    assert urlsplit(ui.page.url).path == f"/partners/{partner}", ui.main_text()[:500]
    # ... and the same form sent again later (the back button, a flaky network's retry).
    again = ui.page.request.post(action, form=sent, max_redirects=0)
    assert again.status == 303, f"{again.status}: {again.text()[:500]}"
    assert urlsplit(again.headers["location"]).path == f"/partners/{partner}"

    recorded = [e["data"]["summary"] for e in site.timeline(partner, types="contact_made")]
    assert recorded == [summary]
    ui.goto(f"/partners/{partner}")
    assert timeline_text(ui).count(summary) == 1


def test_the_partner_page_fits_a_360_pixel_screen(ui: Ui, site: Site) -> None:
    partner = site.partner(
        unique("Southside Community Development Corporation of the Greater Metropolitan Area"),
        communities=["immigrant_families", "small_business_owners"],
        roles=["advisory_member", "technical_expert"],
        occurred_at=f"{days_ago(30).isoformat()}T12:00:00Z",
    )
    site.record(
        partner,
        "commitment_made",
        owed_by="partner",
        commitment_id=unique("C-LONG-IDENTIFIER").replace(" ", "-"),
        description="Translate the tenant rights handbook into Spanish, Vietnamese and Somali",
        due_on=days_ago(-30).isoformat(),
        resource="deliverable",
    )
    site.record(
        partner,
        "contact_made",
        channel="social_media",
        direction="inbound",
        summary="A long message: " + "averyveryverylongwordwithoutanyspaces" * 3,
    )
    ui.page.set_viewport_size({"width": 360, "height": 740})
    wide = []
    for path in [f"/partners/{partner}", f"/partners/{partner}/record/commitment_made"]:
        ui.goto(path)
        width: int = ui.page.evaluate("() => document.scrollingElement.scrollWidth")
        if width > 360:
            wide.append(f"{path}: scrollWidth {width}")
    assert wide == [], "horizontal scroll at 360 px: " + "; ".join(wide)
