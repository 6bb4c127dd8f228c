"""Signing in through the link `pledger serve` prints, and signing out (issue 9 item 3)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser

from tests.ui.support import Site, Ui, token_of, ui_on

pytestmark = pytest.mark.slow


def test_the_printed_link_signs_the_steward_in_and_forgets_the_token(
    browser: Browser, site: Site
) -> None:
    printed = site.steward_link
    assert urlsplit(printed).netloc == urlsplit(site.url).netloc, (
        f"the printed link {printed} should point at the server itself ({site.url})"
    )
    context = browser.new_context()
    try:
        ui = Ui(site, context, context.new_page())
        response = ui.page.goto(printed)
        assert response is not None
        # The sign-in answered with a redirect to the home page, which then showed.
        redirect = response.request.redirected_from
        assert redirect is not None, "opening the link should redirect to the home page"
        assert redirect.url == printed
        assert urlsplit(ui.page.url).path == "/", ui.page.url
        assert "token" not in ui.page.url
        assert response.status == 200
        ui.audit()
        assert token_of(printed) not in ui.page.content(), "the page shows the token"

        cookies = context.cookies()
        session = [c for c in cookies if c["httpOnly"] and c.get("sameSite") == "Strict"]
        assert session, f"no HttpOnly, SameSite=Strict session cookie among {cookies}"
        assert all(token_of(printed) not in c["value"] for c in cookies), "the token is a cookie"

        # Signed in: the nav reaches every page.
        for name, path in [
            ("Partners", "/partners"),
            ("Coalitions", "/coalitions"),
            ("Agenda", "/agenda"),
            ("Review", "/review"),
            ("Audit", "/audit"),
            ("Home", "/"),
        ]:
            nav = ui.page.get_by_role("navigation").get_by_role("link", name=name, exact=True)
            ui.submit(nav)
            assert urlsplit(ui.page.url).path == path, f"{name} led to {ui.page.url}"
        ui.finish()
    finally:
        context.close()


def test_signing_out_ends_the_session(browser: Browser, site: Site) -> None:
    with ui_on(browser, site) as ui:
        before = ui.context.cookies()
        ui.submit(ui.button("Sign out"))
        ui.goto("/")
        assert urlsplit(ui.page.url).path == "/signin", f"after sign out / showed {ui.page.url}"

    # The cookie the browser held before signing out no longer opens anything.
    replay = browser.new_context()
    try:
        replay.add_cookies(
            [
                {"name": c["name"], "value": c["value"], "url": site.url, "httpOnly": c["httpOnly"]}
                for c in before
            ]
        )
        response = replay.request.get(f"{site.url}/", max_redirects=0)
        assert response.status in (303, 307, 302), (
            f"an old session cookie still opens / ({response.status}): the session lives on"
        )
        assert urlsplit(response.headers["location"]).path == "/signin"
    finally:
        replay.close()


def test_a_bad_link_signs_nobody_in(browser: Browser, site: Site) -> None:
    context = browser.new_context()
    try:
        ui = Ui(site, context, context.new_page())
        response = ui.page.goto(f"{site.url}/signin?token=pl_not_a_real_token_at_all_0000")
        assert response is not None
        assert response.status in (401, 403), response.status
        ui.audit()
        ui.goto("/")
        assert urlsplit(ui.page.url).path == "/signin", ui.page.url
        ui.finish()
    finally:
        context.close()
