"""The pages work with JavaScript off (issue 9 item 2: htmx only as progressive enhancement),
and when it is on, the search refreshes the list as one types."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Dialog

from tests.ui.support import Site, Ui, fill_form, unique, wait_for

pytestmark = pytest.mark.slow


def test_register_and_record_with_javascript_off(browser: Browser, site: Site, ui: Ui) -> None:
    """A browser with scripts off does the everyday work. axe needs script, so each page it
    saw is audited again in the signed-in ``ui`` (the same URL answers the same page)."""
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(site.steward_link)
        assert urlsplit(page.url).path == "/"
        page.goto(f"{site.url}/partners/new")
        name = unique("Script Free Collective")
        page.get_by_label("Name", exact=True).fill(name)
        fill_form(page.locator("form.record"), {"kind": "organization"})
        with page.expect_navigation():
            page.get_by_role("button", name="Register partner").click()
        partner = urlsplit(page.url).path.rsplit("/", 1)[-1]
        assert page.locator("h1").inner_text().strip() == name

        page.goto(f"{site.url}/partners/{partner}/record/contact_made")
        summary = unique("Called without any script")
        fill_form(
            page.locator("form.record"),
            {"channel": "phone", "direction": "inbound", "summary": summary},
        )
        with page.expect_navigation():
            page.get_by_role("button", name="Record").click()
        assert urlsplit(page.url).path == f"/partners/{partner}"
        assert summary in page.locator("#timeline").inner_text()

        page.goto(f"{site.url}/partners?q={name.split()[-1]}")
        assert page.locator("#partners tbody a", has_text=name).count() == 1
    finally:
        context.close()
    for path in [
        "/partners/new",
        f"/partners/{partner}/record/contact_made",
        f"/partners/{partner}",
    ]:
        ui.goto(path)


def test_search_as_you_type(ui: Ui, site: Site) -> None:
    tag = unique("typed").split()[-1]
    site.partner(f"Typed Alpha {tag}")
    site.partner(f"Typed Beta {tag}")
    ui.goto("/partners")
    before = ui.page.url
    search = ui.page.get_by_label("Search")
    search.press_sequentially(f"Beta {tag}")

    def narrowed() -> bool:
        # All names in one read: the list may be swapped between two reads.
        names = ui.page.locator("#partners tbody a").all_inner_texts()
        return [n.strip() for n in names] == [f"Typed Beta {tag}"]

    assert wait_for(narrowed), "typing in Search did not narrow the list"
    assert ui.page.url.split("?")[0] == before.split("?")[0]
    ui.audit()


def test_ledger_text_is_shown_as_text(ui: Ui, site: Site) -> None:
    """Names and summaries holding markup are escaped: shown literally, never run."""
    dialogs: list[str] = []

    def dismissed(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    ui.page.on("dialog", dismissed)
    tag = unique("x").split()[-1]
    name = f'<img src=x onerror=alert("name")> & <b>Bold</b> {tag}'
    partner = site.partner(name)
    summary = '<script>alert("summary")</script> "quoted" & done'
    site.record(partner, "contact_made", channel="email", direction="inbound", summary=summary)
    ui.goto(f"/partners/{partner}")
    assert ui.h1() == name
    assert summary in ui.page.locator("#timeline").inner_text()
    assert ui.page.locator("main img[src='x'], main b:text('Bold')").count() == 0
    ui.goto(f"/partners?q={tag}")
    assert ui.page.locator("#partners tbody a").first.inner_text() == name
    ui.goto("/")
    assert dialogs == []
