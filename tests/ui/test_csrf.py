"""A form POST without its CSRF token, or from another site, is refused and records nothing
(issue 9 item 3)."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.ui.support import Site, Ui, fill_form, unique

pytestmark = pytest.mark.slow


def test_a_form_without_its_csrf_token_is_refused(ui: Ui, site: Site) -> None:
    partner = site.partner(unique("Bayview Youth League"))
    ui.goto(f"/partners/{partner}/record/contact_made")
    form = ui.form_of("Record")
    fill_form(form, {"channel": "phone", "direction": "inbound", "summary": "No token"})
    assert form.locator('input[type="hidden"][name="csrftoken"]').count() == 1
    form.locator('[name="csrftoken"]').evaluate("e => e.remove()")
    before = site.position()
    ui.submit(ui.button("Record"), expect=403)
    assert site.events_after(before) == []


def attacker_page(action: str) -> bytes:
    """A page on another site that posts a contact to the ledger as soon as it loads."""
    fields = {
        "channel": "phone",
        "direction": "inbound",
        "summary": "Forged from another site",
        "csrftoken": "guessed",
    }
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in fields.items()
    )
    return (
        '<!doctype html><html lang="en"><head><title>Win a prize</title></head><body><main>'
        f'<form id="f" method="post" action="{html.escape(action)}">{inputs}'
        '<button type="submit">Claim</button></form>'
        "</main></body></html>"
    ).encode()


@contextmanager
def another_site(body: bytes) -> Iterator[str]:
    """A throwaway web server on this machine; it is reached as http://localhost:PORT while the
    ledger is http://127.0.0.1:PORT, so the two are different sites (ports do not make one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_cross_site_post_is_refused(ui: Ui, site: Site) -> None:
    partner = site.partner(unique("Delta Farmworkers Alliance"))
    action = f"{site.url}/partners/{partner}/record/contact_made"
    assert urlsplit(site.url).hostname == "127.0.0.1"
    with another_site(attacker_page(action)) as elsewhere:
        before = site.position()
        page = ui.page
        page.goto(elsewhere)
        # The victim, signed in to the ledger in this browser, clicks on the other site.
        with page.expect_navigation(url=action) as navigation:
            page.get_by_role("button", name="Claim").click()
        response = navigation.value
        assert response is not None
        assert response.status == 403, f"a cross-site POST answered {response.status}"
        ui.audit()
        assert site.events_after(before) == []
        assert site.timeline(partner, types="contact_made") == []
