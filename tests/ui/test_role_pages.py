"""Each role sees in the pages exactly what it may read over the API (issue 9 item 4, SPEC §4, §8):
a viewer sees everything and no forms; a coalition token reaches its coalition and nothing else."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser

from tests.ui.support import Site, Ui, post_forms, ui_on, unique

pytestmark = pytest.mark.slow

WRITE_LINKS = re.compile(r"^\s*(Record|Register|Retract|Form a coalition)\b")
WRITE_BUTTONS = ["Record", "Register partner", "Form coalition", "Add member", "Remove"]


def coalition_with_members(site: Site) -> tuple[str, list[str]]:
    members = [site.partner(unique("Member Org")), site.partner(unique("Member Person"))]
    coalition: str = site.api.post(
        "/v1/coalitions",
        {
            "name": unique("Transit Justice"),
            "shared_vision": "Buses that come.",
            "agreed_measures": ["riders served"],
        },
    )["id"]
    for partner in members:
        site.api.post(f"/v1/coalitions/{coalition}/members", {"partner_id": partner})
    return coalition, members


def no_writes_offered(ui: Ui) -> None:
    # Signing out and re-running the verification write nothing to the ledger.
    harmless = ("/signout", "/audit/verify")
    writes = [a for a in post_forms(ui.page) if urlsplit(a).path not in harmless]
    assert writes == [], f"{ui.page.url} offers forms that write: {writes}"
    for name in WRITE_BUTTONS:
        offered = ui.page.get_by_role("button", name=name).count()
        assert offered == 0, f"{ui.page.url} shows a {name!r} button"
    # (Case matters: "Verify the record" leads to the audit page and writes nothing.)
    offered_links = ui.page.get_by_role("link", name=WRITE_LINKS).all_inner_texts()
    assert offered_links == [], f"{ui.page.url} links to writing: {offered_links}"
    for href in ['a[href*="/record/"]', 'a[href$="/new"]']:
        assert ui.page.locator(href).count() == 0, f"{ui.page.url} has a link {href}"


def test_a_viewer_sees_every_page_and_no_forms(browser: Browser, site: Site) -> None:
    coalition, (partner, _) = coalition_with_members(site)
    site.record(partner, "contact_made", channel="email", direction="inbound", summary="Hi")
    with ui_on(browser, site, site.viewer_link()) as ui:
        for path in [
            "/",
            "/partners",
            f"/partners/{partner}",
            "/coalitions",
            f"/coalitions/{coalition}",
            "/agenda",
            "/review",
            "/audit",
        ]:
            ui.goto(path)
            no_writes_offered(ui)
        ui.goto(f"/partners/{partner}")
        assert ui.page.locator("#timeline").inner_text().count("Hi") >= 1
        for path in [
            "/partners/new",
            f"/partners/{partner}/record/contact_made",
            f"/partners/{partner}/record/entry_retracted?version=2",
            "/coalitions/new",
        ]:
            ui.goto(path, expect=403)
        # A viewer's POST, were a form forged, records nothing.
        before = site.position()
        refused = ui.page.request.post(
            f"{site.url}/partners/{partner}/record/contact_made",
            form={"channel": "phone", "direction": "inbound", "summary": "forged"},
            max_redirects=0,
        )
        assert refused.status == 403, refused.status
        assert site.events_after(before) == []


def test_a_coalition_token_reaches_nothing_but_its_coalition(browser: Browser, site: Site) -> None:
    coalition, members = coalition_with_members(site)
    other, _ = coalition_with_members(site)
    outsider = site.partner(unique("Not A Member"))
    with ui_on(browser, site, site.coalition_link(coalition)) as ui:
        # Signing in lands on its coalition's page.
        assert urlsplit(ui.page.url).path == f"/coalitions/{coalition}", ui.page.url
        ui.goto("/")
        assert urlsplit(ui.page.url).path == f"/coalitions/{coalition}", ui.page.url
        no_writes_offered(ui)
        text = ui.main_text()
        for member in members:
            name = site.api.get(f"/v1/partners/{member}")["name"]
            assert name in text, f"its member {name} is not on the coalition page"
            health = site.health(member)
            row = ui.page.locator("#members tbody tr", has_text=name).inner_text()
            assert str(health["score"]) in row

        # Its report, in each format.
        for extension in ("json", "csv", "md", "html"):
            own = ui.page.request.get(f"{site.url}/coalitions/{coalition}/report.{extension}")
            assert own.status == 200, f"its own {extension} report: {own.status}"

        for path in [
            "/partners",
            f"/partners/{members[0]}",
            f"/partners/{outsider}",
            "/agenda",
            "/review",
            "/audit",
            f"/coalitions/{other}",
        ]:
            ui.goto(path, expect=403)
            assert site.api.get(f"/v1/partners/{outsider}")["name"] not in ui.main_text()
        theirs = ui.page.request.get(f"{site.url}/coalitions/{other}/report.json")
        assert theirs.status == 403, f"another coalition's report: {theirs.status}"

        # Its pages lead nowhere it may not go.
        ui.goto(f"/coalitions/{coalition}")
        hrefs: list[str] = ui.page.locator("a").evaluate_all("links => links.map(a => a.href)")
        forbidden = ("/partners", "/agenda", "/review", "/audit")
        dead_ends = [h for h in hrefs if urlsplit(h).path.startswith(forbidden)]
        assert dead_ends == [], f"the coalition page links to pages it would refuse: {dead_ends}"
