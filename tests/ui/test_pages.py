"""Home, agenda, review and audit pages, and the self-hosted API docs (issue 9 items 2 and 4)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Request

from tests.ui.support import Site, Ui, days_ago, ui_on, unique

pytestmark = pytest.mark.slow


def test_home_shows_what_needs_attention_today(ui: Ui, site: Site) -> None:
    partner_name = unique("Overdue Org")
    partner = site.partner(partner_name, occurred_at=f"{days_ago(30).isoformat()}T12:00:00Z")
    site.record(
        partner,
        "commitment_made",
        occurred_at=f"{days_ago(20).isoformat()}T12:00:00Z",
        owed_by="us",
        commitment_id="C-HOME-1",
        description="Send the signed letter of support",
        due_on=days_ago(5).isoformat(),
        resource="deliverable",
    )
    ui.goto("/")
    text = ui.main_text()
    assert "Send the signed letter of support" in text, "an overdue commitment is not on home"
    assert partner_name in text
    verify = site.api.call("POST", "/v1/audit/verify").json()  # a fresh run
    assert verify["digest"] in text, "home does not show the ledger's digest"
    assert ui.page.locator("main").count() == 1
    assert ui.page.get_by_role("navigation").count() >= 1


def test_agenda_offers_a_calendar_subscription(ui: Ui, site: Site) -> None:
    name = unique("Agenda Partner")
    site.partner(name, occurred_at=f"{days_ago(40).isoformat()}T12:00:00Z")
    ui.goto("/agenda")
    assert name in ui.main_text(), "a check-in overdue by cadence is not on the agenda"
    hrefs: list[str] = ui.page.locator("a").evaluate_all("links => links.map(a => a.href)")
    calendars = [h for h in hrefs if ".ics" in urlsplit(h).path]
    assert calendars, f"no calendar subscription link among {hrefs}"
    feed = ui.page.request.get(calendars[0].replace("webcal://", "http://"))
    assert feed.status == 200, f"{calendars[0]}: {feed.status}"
    assert feed.headers["content-type"].startswith("text/calendar")
    assert "BEGIN:VCALENDAR" in feed.text()


def test_review_names_the_neglected(ui: Ui, site: Site) -> None:
    name = unique("Neglected Partner")
    site.partner(name, occurred_at=f"{days_ago(90).isoformat()}T12:00:00Z")
    ui.goto("/review")
    review = site.api.get("/v1/review")
    assert any(p.get("name") == name for p in review["neglected"]), review["neglected"]
    assert name in ui.main_text(), "a neglected partner is not on the review page"


def test_audit_shows_the_verification(ui: Ui, site: Site) -> None:
    site.partner(unique("Audited Partner"))
    verify = site.api.call("POST", "/v1/audit/verify").json()  # a fresh run
    assert verify["ok"] is True
    ui.goto("/audit")
    text = ui.main_text()
    assert verify["digest"] in text
    assert str(verify["position"]) in text
    # A steward runs the verification from the page and sees it pass, at today's position.
    ui.submit(ui.button("Verify now"))
    assert urlsplit(ui.page.url).path == "/audit"
    result = ui.page.locator("#verification").inner_text()
    assert "Passed" in result, result
    assert str(verify["position"]) in result, result


@pytest.mark.parametrize(
    ("path", "title"), [("/docs", "Partnership Ledger"), ("/redoc", "Partnership Ledger")]
)
def test_the_api_docs_load_from_the_ledger_alone(
    browser: Browser, site: Site, path: str, title: str
) -> None:
    with ui_on(browser, site) as ui:
        requested: list[str] = []

        def seen(request: Request) -> None:
            requested.append(request.url)

        ui.page.on("request", seen)
        response = ui.page.goto(site.url + path)
        assert response is not None
        assert response.status == 200, response.status
        # Audited once drawn (axe over ReDoc's large page takes a while; once is enough).
        ui.page.get_by_text(title).first.wait_for(state="visible")
        ui.page.wait_for_load_state("networkidle")
        ui.audit()
        elsewhere = [
            url
            for url in requested
            if not (url.startswith(site.url + "/") or url.startswith(("data:", "blob:")))
        ]
        assert elsewhere == [], f"{path} asked other origins for {elsewhere}"
        assert any(urlsplit(u).path.endswith(".js") for u in requested), (
            f"{path} loaded no script of its own: {requested}"
        )


def test_the_main_pages_fit_a_360_pixel_screen(browser: Browser, site: Site) -> None:
    partner = site.partner(unique("Narrow Screen Partner"))
    with ui_on(browser, site, viewport={"width": 360, "height": 740}) as ui:
        wide = []
        for path in [
            "/",
            "/partners",
            f"/partners/{partner}",
            "/coalitions",
            "/agenda",
            "/review",
            "/audit",
        ]:
            ui.goto(path)
            width: int = ui.page.evaluate("() => document.scrollingElement.scrollWidth")
            if width > 360:
                wide.append(f"{path}: {width}px")
        assert wide == [], "horizontal scroll at 360 px on " + ", ".join(wide)
