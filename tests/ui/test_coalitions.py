"""Forming a coalition, adding and removing members, and its report (issue 9 item 4)."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from tests.ui.support import Site, Ui, days_ago, fill_form, unique

pytestmark = pytest.mark.slow

REPORT_KINDS = {
    "JSON": ("json", "application/json"),
    "CSV": ("csv", "text/csv"),
    "Markdown": ("md", "text/markdown"),
    "HTML": ("html", "text/html"),
}


def member_names(ui: Ui) -> list[str]:
    names = ui.page.locator("#members tbody tr > :first-child").all_inner_texts()
    return [name.strip() for name in names]


def add_member(ui: Ui, name: str) -> None:
    form = ui.form_of("Add member")
    partner = ui.page.get_by_label("Partner", exact=True)
    assert partner.evaluate("e => e.name") == "partner_id"
    partner.select_option(label=name)
    ui.submit(form.get_by_role("button", name="Add member"))


def test_form_a_coalition_add_members_and_download_its_report(ui: Ui, site: Site) -> None:
    started = f"{days_ago(50).isoformat()}T12:00:00Z"
    first = unique("Parkview Residents Association")
    second = unique("Maria Gonzalez")
    first_id = site.partner(first, occurred_at=started)
    second_id = site.partner(second, kind="individual", occurred_at=started)
    site.record(
        first_id,
        "commitment_made",
        owed_by="us",
        description="Stipend for the resident survey",
        due_on=days_ago(-20).isoformat(),
        resource="financial",
        amount="120.00",
        currency="USD",
    )
    site.record(first_id, "payment_made", amount="120.00", currency="USD", purpose="stipend")

    name = unique("Clean Air Coalition")
    ui.goto("/coalitions")
    ui.follow("Form a coalition")
    assert urlsplit(ui.page.url).path == "/coalitions/new"
    form = ui.form_of("Form coalition")
    fill_form(
        form,
        {
            "name": name,
            "shared_vision": "Every child in the valley breathes clean air.",
            "agreed_measures": "asthma visits down\ntrucks rerouted",
        },
    )
    ui.submit(ui.button("Form coalition"))
    coalition_id = ui.partner_id_from_url()
    assert urlsplit(ui.page.url).path == f"/coalitions/{coalition_id}"
    assert ui.h1() == name
    text = ui.main_text()
    for shown in [
        "Every child in the valley breathes clean air.",
        "asthma visits down",
        "trucks rerouted",
    ]:
        assert shown in text, f"{shown!r} is not on the coalition page"
    formed = site.api.get(f"/v1/coalitions/{coalition_id}")
    assert formed["agreed_measures"] == ["asthma visits down", "trucks rerouted"]

    add_member(ui, first)
    add_member(ui, second)
    assert sorted(member_names(ui)) == sorted([first, second])
    health = site.health(first_id)
    first_row = ui.page.locator("#members tbody tr", has_text=first).inner_text()
    assert str(health["score"]) in first_row, f"{first_row!r} lacks health {health['score']}"

    # The coalition's list shows it.
    ui.goto("/coalitions")
    assert ui.link(name).count() == 1

    # The report, shown in the page for a period, and downloaded in each format.
    ui.goto(f"/coalitions/{coalition_id}")
    report_form = ui.page.locator("form").filter(
        has=ui.page.get_by_role("button", name="Show report")
    )
    period = {"from": days_ago(60).isoformat(), "to": days_ago(-1).isoformat()}
    fill_form(report_form, period)
    ui.submit(report_form.get_by_role("button", name="Show report"))
    query = parse_qs(urlsplit(ui.page.url).query)
    assert (query.get("from"), query.get("to")) == ([period["from"]], [period["to"]]), ui.page.url
    shown_text = ui.main_text()
    assert first in shown_text
    assert second in shown_text
    # Each member's promises, as the downloaded html report lists them.
    promises = ui.page.locator("section", has=ui.page.locator("#h-promises"))
    stipend = promises.get_by_role("table", name=first).locator("tbody tr").all_inner_texts()
    assert len(stipend) == 1, stipend
    assert "Stipend for the resident survey" in stipend[0]
    assert "open" in stipend[0]
    assert "No promises made in the period." in promises.inner_text()

    api_report = site.api.get(f"/v1/coalitions/{coalition_id}/report", **period)
    assert api_report["digest"] in shown_text, "the shown report does not state its digest"
    for label, (extension, media_type) in REPORT_KINDS.items():
        link = ui.page.get_by_role("link", name=label, exact=True)
        assert link.count() == 1, f"no {label} download link"
        href = link.get_attribute("href") or ""
        parts = urlsplit(href)
        assert parts.path == f"/coalitions/{coalition_id}/report.{extension}", href
        linked = parse_qs(parts.query)
        assert (linked.get("from"), linked.get("to")) == ([period["from"]], [period["to"]]), (
            f"the {label} link does not carry the period shown: {href}"
        )
        response = ui.page.request.get(urljoin(ui.page.url, href))
        assert response.status == 200, f"{href}: {response.status} {response.text()[:300]}"
        kind = response.headers.get("content-type", "")
        assert kind.startswith(media_type), f"{href} is {kind}, not {media_type}"
        body = response.text()
        if extension == "json":
            report = json.loads(body)
            assert sorted(m["name"] for m in report["members"]) == sorted([first, second])
            assert report["digest"] == api_report["digest"]
            [member] = [m for m in report["members"] if m["name"] == first]
            assert member["payments"] == {"USD": "120.00"}
        elif extension == "csv":
            names = {row.get("name") for row in csv.DictReader(io.StringIO(body))}
            assert {first, second} <= names, names
        else:
            assert first in body, f"{label} report lacks {first}"
            assert second in body, f"{label} report lacks {second}"

    # One member leaves, with a reason; the page and the report drop it.
    ui.goto(f"/coalitions/{coalition_id}")
    row = ui.page.locator("#members tbody tr", has_text=second)
    leave = row.locator("form").filter(has=ui.page.get_by_role("button", name="Remove"))
    reason = leave.locator('[name="reason"]')
    assert reason.count() == 1, "the Remove form asks no reason"
    reason.fill("Moved out of the valley.")
    before_leaving = site.position()
    ui.submit(leave.get_by_role("button", name="Remove"))
    # A leave is recorded for good, so the ledger asks once more before writing anything.
    assert ui.page.get_by_role("heading", level=1).inner_text() == (f"Remove {second} from {name}?")
    assert site.events_after(before_leaving) == []
    assert ui.page.get_by_label("Reason (optional)").input_value() == "Moved out of the valley."
    ui.submit(ui.page.get_by_role("button", name=f"Remove {second}"))
    assert member_names(ui) == [first]
    members = site.api.get(f"/v1/coalitions/{coalition_id}")["members"]
    assert [m["partner_id"] for m in members] == [first_id]
    [left] = site.events_after(before_leaving)
    assert left["type"] == "member_left"
    assert (left["data"]["partner_id"], left["data"]["reason"]) == (
        second_id,
        "Moved out of the valley.",
    )
