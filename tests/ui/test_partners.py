"""Registering a partner and finding partners again (issue 9 item 4: Partners, register form)."""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import Locator

from tests.ui.support import Site, Ui, fill_form, unique

pytestmark = pytest.mark.slow


def set_list(form: Locator, name: str, items: list[str]) -> None:
    """A list field takes one item a line in a text area, or items separated by ";"."""
    control = form.locator(f'[name="{name}"]')
    textarea = control.evaluate("e => e.tagName === 'TEXTAREA'")
    control.fill(("\n" if textarea else "; ").join(items))


def names_in_table(ui: Ui) -> list[str]:
    """The partner names the table shows, in order (each row's link to a partner page)."""
    links = ui.page.locator("#partners tbody tr a[href^='/partners/']")
    return [name.strip() for name in links.all_inner_texts()]


def test_register_a_partner(ui: Ui, site: Site) -> None:
    name = unique("Riverside Youth Council")
    ui.goto("/partners")
    ui.submit(ui.page.locator('main a[href="/partners/new"]').first)
    assert urlsplit(ui.page.url).path == "/partners/new"
    form = ui.form_of("Register partner")
    ui.page.get_by_label("Name", exact=True).fill(name)
    fill_form(form, {"kind": "organization", "region": "North"})
    set_list(form, "communities", ["youth", "riverside"])
    set_list(form, "roles", ["advisory_member", "speaker"])
    ui.submit(ui.button("Register partner"))

    partner_id = ui.partner_id_from_url()
    assert urlsplit(ui.page.url).path == f"/partners/{partner_id}"
    assert ui.h1() == name
    profile = site.api.get(f"/v1/partners/{partner_id}")
    assert profile["name"] == name
    assert profile["kind"] == "organization"
    assert sorted(profile["communities"]) == ["riverside", "youth"]
    assert sorted(profile["roles"]) == ["advisory_member", "speaker"]
    assert profile["region"] == "North"
    # The new partner's page shows a health score and a timeline holding its registration.
    assert ui.page.locator("#health-score").inner_text().strip().isdigit()
    assert ui.page.locator("#timeline > *").count() == 1

    # And the partners page finds it.
    ui.goto("/partners")
    search = ui.page.locator("form").filter(has=ui.page.get_by_label("Search"))
    ui.page.get_by_label("Search").fill(name.split()[-1])
    ui.submit(search.locator("[type=submit]").first)
    assert names_in_table(ui) == [name]


def test_a_refused_registration_comes_back_with_the_problem_beside_its_field(
    ui: Ui, site: Site
) -> None:
    before = site.position()
    ui.goto("/partners/new")
    ui.page.get_by_label("Name", exact=True).fill("x" * 10_001)
    ui.submit(ui.button("Register partner"), expect=422)
    alert = ui.page.get_by_role("alert")
    assert alert.count() >= 1, "no error summary (role=alert)"
    assert alert.first.inner_text().strip(), "an empty error summary"
    assert ui.page.locator(".field-error").count() >= 1
    assert site.events_after(before) == []


def test_search_ignores_case_and_accents_and_filters_narrow(ui: Ui, site: Site) -> None:
    tag = unique("x").split()[-1]
    community = f"c{tag}"
    jose = site.partner(
        f"José Ramírez {tag}",
        kind="individual",
        communities=[community],
        region="South",
        roles=["speaker"],
    )
    site.partner(f"Ana Núñez {tag}", kind="individual", communities=[community], region="North")
    site.partner(f"Other {tag}", communities=["elsewhere"], region="South")

    query = f"jose ramirez {tag}"
    ui.goto("/partners?" + urlencode({"q": query}))
    api_found = [p["name"] for p in site.api.get("/v1/partners", q=query)["partners"]]
    assert names_in_table(ui) == [f"José Ramírez {tag}"], (
        f"the page found {names_in_table(ui)} for {query!r}; the API finds {api_found}"
    )
    ui.submit(ui.page.locator("#partners tbody a", has_text="José Ramírez").first)
    assert ui.partner_id_from_url() == jose

    # Filters through the form itself: community and region.
    ui.goto("/partners")
    form = ui.page.locator("form").filter(has=ui.page.get_by_label("Search"))
    fill_form(form, {"q": tag, "community": community})
    ui.submit(form.locator("[type=submit]").first)
    assert sorted(names_in_table(ui)) == sorted([f"José Ramírez {tag}", f"Ana Núñez {tag}"])
    shown = parse_qs(urlsplit(ui.page.url).query)
    assert shown.get("community") == [community], ui.page.url

    fill_form(form, {"region": "South"})
    ui.submit(form.locator("[type=submit]").first)
    assert names_in_table(ui) == [f"José Ramírez {tag}"]

    # Sort by name, both ways.
    ui.goto(f"/partners?q={tag}&sort=name&order=asc")
    ascending = names_in_table(ui)
    assert ascending == sorted(ascending, key=str.casefold)
    assert len(ascending) == 3
    ui.goto(f"/partners?q={tag}&sort=name&order=desc")
    assert names_in_table(ui) == list(reversed(ascending))


def test_the_csv_download_holds_what_is_shown(ui: Ui, site: Site) -> None:
    tag = unique("csv").split()[-1]
    for n in range(3):
        site.partner(f"Csv Partner {n} {tag}", communities=[f"k{tag}"])
    ui.goto(f"/partners?q={tag}&sort=name&order=asc")
    shown = names_in_table(ui)
    assert len(shown) == 3
    link = ui.link("Download CSV")
    href = link.get_attribute("href") or ""
    assert urlsplit(href).path == "/partners.csv", href
    assert parse_qs(urlsplit(href).query) == parse_qs(urlsplit(ui.page.url).query), href
    response = ui.page.request.get(site.url + href if href.startswith("/") else href)
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/csv"), response.headers
    rows = list(csv.DictReader(io.StringIO(response.text())))
    assert [row["name"] for row in rows] == shown


def test_pages_of_partners_follow_one_another(ui: Ui, site: Site) -> None:
    tag = unique("page").split()[-1]
    made = sorted(f"Paged {n:03d} {tag}" for n in range(51))
    for name in made:
        site.partner(name, communities=[f"p{tag}"])
    ui.goto(f"/partners?community=p{tag}&sort=name&order=asc")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        rows = names_in_table(ui)
        assert rows, f"page {pages} is empty"
        seen.extend(rows)
        if not ui.link("Next page").count():
            break
        assert pages < 60, "Next page never ends"
        ui.follow("Next page")
    assert pages >= 2, "51 partners fit on one page: no pagination"
    assert seen == made
