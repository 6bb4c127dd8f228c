"""What the browser stories share: a served ledger, sign-in links, and a page that audits itself.

A ``Site`` is `pledger serve` on a fresh store (started by tests/e2e's harness) with the steward
sign-in link it printed. A ``Ui`` is one signed-in browser context on a site; every page it loads
is checked the same way before the story goes on:

- axe-core finds no serious or critical violation;
- the response carries a Content-Security-Policy with no 'unsafe-inline' script and no origin
  but the site's own, and the browser reported no CSP violation nor uncaught script error;
- the response is an HTML page (a person is looking at it, even when it says 403).

A page that loads without being audited fails the test at its end, so no story can skip it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import pytest
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Frame,
    Locator,
    Page,
    Response,
)

from api.settings import Settings
from tests.api.support import shown
from tests.e2e.test_serve import Api, Server, pledger

SIGNIN_LINK = re.compile(r"(http://\S+/signin\?token=\S+)")
SERIOUS = frozenset({"serious", "critical"})
# Bounds that only turn a hang into a failure; nothing asserts on how long anything took.
NAVIGATION_TIMEOUT_MS = 30_000
# CSP sources that name no origin at all.
KEYWORD_SOURCES = re.compile(
    r"'(self|none|strict-dynamic|report-sample|nonce-[^']+|sha(256|384|512)-[^']+)'"
)
UUID_PATH = re.compile(r"/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_AXE = Axe()


def unique(prefix: str) -> str:
    """A name no other test (or earlier run on the same store) uses."""
    return f"{prefix} {uuid4().hex[:8]}"


def days_ago(days: int) -> date:
    return datetime.now(UTC).date() - timedelta(days=days)


# ---- the served ledger ---------------------------------------------------------------------


@dataclass
class Site:
    """`pledger serve` on its own store, and the steward sign-in link it printed on first start."""

    server: Server
    settings: Settings
    steward_link: str
    api: Api = field(init=False)
    _out_seen: int = 0
    _err_seen: int = 0

    def __post_init__(self) -> None:
        self.api = Api(self.server.url, token_of(self.steward_link))

    @property
    def url(self) -> str:
        return self.server.url

    def link(self, *args: str) -> str:
        """`pledger token create ARGS --link`: its stdout is the sign-in link and nothing else."""
        where = urlsplit(self.url)
        address = ["--host", str(where.hostname), "--port", str(where.port)]
        created = pledger(self.settings, "token", "create", *args, *address, "--link")
        assert created.returncode == 0, created.stderr
        printed = created.stdout.removesuffix("\n")
        found = SIGNIN_LINK.fullmatch(printed)
        assert found is not None, f"--link should print only a sign-in link: {created.stdout!r}"
        assert urlsplit(printed).netloc == where.netloc, f"{printed} is not on {self.url}"
        return printed

    def viewer_link(self) -> str:
        return self.link("--role", "viewer", "--name", unique("ui-viewer").replace(" ", "-"))

    def coalition_link(self, coalition_id: str) -> str:
        name = unique("ui-coalition").replace(" ", "-")
        return self.link("--role", "coalition", "--coalition", coalition_id, "--name", name)

    # -- the JSON API, for setting a story up and for checking what it recorded --

    def position(self) -> int:
        """The last position of the log, from /healthz."""
        health = self.api.client.get("/healthz").json()
        position: int = health["log_position"]
        return position

    def events_after(self, position: int) -> list[dict[str, Any]]:
        """The log after ``position``, each event's data with its personal values back in
        place (the log holds them as salted commitments, disclosed beside, issue 16)."""
        events: list[dict[str, Any]] = self.api.get("/v1/events", after=position, limit=1000)[
            "events"
        ]
        return [event | {"data": shown(event)} for event in events]

    def partner(self, name: str, **fields: Any) -> str:
        """Register a partner over the API; its id."""
        body = {"name": name, "kind": "organization", **fields}
        partner_id: str = self.api.post("/v1/partners", body)["id"]
        return partner_id

    def record(self, partner_id: str, type_: str, **fields: Any) -> dict[str, Any]:
        recorded: dict[str, Any] = self.api.post(
            f"/v1/partners/{partner_id}/events", {"type": type_, **fields}
        )
        return recorded

    def health(self, partner_id: str, **params: Any) -> dict[str, Any]:
        health: dict[str, Any] = self.api.get(f"/v1/partners/{partner_id}/health", **params)
        return health

    def sentence(self, partner_id: str, component: str, **params: Any) -> str:
        for item in self.health(partner_id, **params)["components"]:
            if item["name"] == component:
                explanation: str = item["explanation"]
                return explanation
        raise AssertionError(f"no {component} component in the health of {partner_id}")

    def timeline(self, partner_id: str, **params: Any) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.api.get(
            f"/v1/partners/{partner_id}/timeline", limit=1000, **params
        )["events"]
        return events

    # -- the server's own log --

    def new_server_errors(self) -> str:
        """What the server logged since the last call, when that holds a traceback or a 5xx
        answer; "" otherwise."""
        out, err = self.server.stdout(), self.server.stderr()
        fresh = out[self._out_seen :] + err[self._err_seen :]
        self._out_seen, self._err_seen = len(out), len(err)
        lines = fresh.splitlines()
        shown = [line for line in lines if re.search(r'HTTP/1\.1" 5\d\d', line)]
        for at, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = next(
                    (i for i in range(at + 1, len(lines)) if lines[i] and lines[i][0] != " "),
                    len(lines) - 1,
                )
                shown.extend(["...", *lines[max(at, end - 8) : end + 1]])
        return "\n".join(shown)


def token_of(link: str) -> str:
    tokens = parse_qs(urlsplit(link).query).get("token", [])
    assert len(tokens) == 1, link
    return tokens[0]


def steward_link_of(server: Server) -> str:
    found = SIGNIN_LINK.search(server.stdout())
    assert found is not None, f"pledger serve printed no sign-in link\n{server.output()}"
    return found.group(1)


# ---- checks every page gets ----------------------------------------------------------------


def csp_problems(policy: str | None, origin: str) -> list[str]:
    """Why this Content-Security-Policy would let in inline script or another origin, if it
    would; [] when it is strict enough."""
    if not policy:
        return ["no Content-Security-Policy header"]
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives.setdefault(words[0].lower(), words[1:])
    problems = []
    script_directives: list[str] = [
        d for d in ("script-src", "script-src-elem", "script-src-attr") if d in directives
    ]
    if not script_directives:
        if "default-src" not in directives:
            problems.append("neither script-src nor default-src: any script may run")
        script_directives = ["default-src"]
    for name in script_directives:
        if "'unsafe-inline'" in (s.lower() for s in directives.get(name, [])):
            problems.append(f"{name} allows 'unsafe-inline'")
    for name, sources in directives.items():
        for source in sources:
            lowered = source.lower()
            if KEYWORD_SOURCES.fullmatch(lowered) or lowered in (
                "'unsafe-inline'",
                "'unsafe-eval'",
            ):
                continue
            if lowered in ("data:", "blob:") and not name.startswith("script"):
                continue  # inline images and fonts come from no origin
            if name in ("report-uri", "report-to", "sandbox", "plugin-types"):
                continue
            if lowered.rstrip("/") == origin.lower():
                continue
            problems.append(f"{name} allows {source}")
    return problems


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    results = _AXE.run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    return [v for v in violations if v.get("impact") in SERIOUS]


def describe_violations(url: str, violations: list[dict[str, Any]]) -> str:
    lines = [f"axe: {len(violations)} serious or critical violation(s) on {url}"]
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.append(f"  {violation.get('helpUrl', '')}")
        for node in violation["nodes"][:5]:
            lines.append(f"    at {', '.join(map(str, node['target']))}: {node['html'][:200]}")
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            if summary:
                lines.append(f"      {summary[:300]}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    ... and {len(violation['nodes']) - 5} more")
    return "\n".join(lines)


# ---- a signed-in browser -------------------------------------------------------------------


@dataclass
class Ui:
    """One browser context on a site, its page, and the audit every loaded page must pass."""

    site: Site
    context: BrowserContext
    page: Page
    audited: list[str] = field(default_factory=list)
    _unaudited: list[str] = field(default_factory=list)
    _documents: list[Response] = field(default_factory=list)
    _script_problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.set_default_timeout(NAVIGATION_TIMEOUT_MS)
        self.page.on("framenavigated", self._navigated)
        self.page.on("response", self._responded)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self._script_problems.append(f"uncaught: {error}"))

    @property
    def origin(self) -> str:
        return self.site.url

    def _ours(self, url: str) -> bool:
        return url == self.origin or url.startswith(self.origin + "/")

    def _navigated(self, frame: Frame) -> None:
        if frame == self.page.main_frame and self._ours(frame.url):
            self._unaudited.append(frame.url)

    def _responded(self, response: Response) -> None:
        request = response.request
        if request.resource_type == "document" and request.frame == self.page.main_frame:
            self._documents.append(response)

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        if message.type == "error" and ("Content Security Policy" in text or "Refused to" in text):
            self._script_problems.append(f"{self.page.url}: {text}")

    # -- moving around --

    def goto(self, path: str, expect: int = 200) -> Response:
        """Open a path (or a full URL) of the site and audit what loads."""
        url = path if path.startswith("http") else self.origin + path
        response = self.page.goto(url)
        assert response is not None, url
        if response.status != expect:
            self._unaudited.clear()  # the story fails here, on what matters
        assert response.status == expect, (
            f"GET {url} answered {response.status}, not {expect}: {response.text()[:500]}"
        )
        self.audit()
        return response

    def submit(self, button: Locator, expect: int = 200) -> Response:
        """Click a control that loads a page (a form's button, a link) and audit the result.

        ``expect`` is the status of the page that finally shows (after any redirect)."""
        with self.page.expect_navigation() as navigation:
            button.click()
        response = navigation.value
        assert response is not None
        if response.status != expect:
            self._unaudited.clear()  # the story fails here, on what matters
        assert response.status == expect, (
            f"{response.request.method} {response.url} answered {response.status}, "
            f"not {expect}: {self.main_text()[:800]}"
        )
        self.audit()
        return response

    def follow(self, link_name: str, expect: int = 200) -> Response:
        return self.submit(self.page.get_by_role("link", name=link_name, exact=True).first, expect)

    def sign_in(self, link: str) -> Response:
        response = self.goto(link)
        assert "token" not in self.page.url, f"the token stays in the address bar: {self.page.url}"
        return response

    # -- what every page must pass --

    def audit(self) -> None:
        self.page.wait_for_load_state("load")
        url = self.page.url
        assert self._documents, f"no document response for {url}"
        document = self._documents[-1]
        kind = document.headers.get("content-type", "")
        assert kind.startswith("text/html"), f"{url} is {kind!r}, not an HTML page"
        problems = csp_problems(document.headers.get("content-security-policy"), self.origin)
        assert not problems, f"{document.url}: " + "; ".join(problems)
        violations = serious_violations(self.page)
        assert not violations, describe_violations(url, violations)
        assert not self._script_problems, "\n".join(self._script_problems)
        self.audited.append(url)
        self._unaudited.clear()

    def finish(self) -> None:
        """At the end of a story: every page was audited, and the server logged no error."""
        assert not self._script_problems, "\n".join(self._script_problems)
        assert not self._unaudited, f"pages loaded but never audited: {self._unaudited}"
        errors = self.site.new_server_errors()
        assert not errors, f"the server logged errors during this story:\n{errors}"

    # -- reading the page --

    def main_text(self) -> str:
        return self.page.locator("body").inner_text()

    def h1(self) -> str:
        return self.page.locator("h1").first.inner_text().strip()

    def partner_id_from_url(self) -> str:
        found = UUID_PATH.search(urlsplit(self.page.url).path)
        assert found is not None, f"not a partner or coalition page: {self.page.url}"
        return found.group(1)

    def button(self, name: str) -> Locator:
        return self.page.get_by_role("button", name=name, exact=True)

    def link(self, name: str) -> Locator:
        return self.page.get_by_role("link", name=name, exact=True)

    def form_of(self, button_name: str) -> Locator:
        """The form holding the button of this name."""
        return self.page.locator("form").filter(has=self.button(button_name))

    def form_fields(self, form: Locator) -> dict[str, str]:
        """What the form would send now (name -> value)."""
        entries: list[list[str]] = form.evaluate(
            "f => Array.from(new FormData(f).entries()).map(([k, v]) => [k, String(v)])"
        )
        return dict(entries)


def set_field(form: Locator, name: str, value: str) -> None:
    """Give a form's field a value whatever its control: select, radio, checkbox or text."""
    control = form.locator(f'[name="{name}"]')
    assert control.count() > 0, f"the form has no field named {name!r}"
    first = control.first
    tag = first.evaluate("e => e.tagName.toLowerCase()")
    kind = (first.get_attribute("type") or "").lower()
    if tag == "select":
        first.select_option(value)
    elif kind == "radio" or kind == "checkbox":
        form.locator(f'[name="{name}"][value="{value}"]').check()
    else:
        first.fill(value)


def fill_form(form: Locator, values: Mapping[str, str]) -> None:
    for name, value in values.items():
        set_field(form, name, value)


def field_errors(page: Page) -> dict[str, str]:
    """Each element of class field-error, keyed by the one field it sits beside: the nearest
    ancestor that holds exactly one named control names it."""
    pairs: list[list[str]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('.field-error')).map(error => {
            let node = error.parentElement;
            while (node && node.tagName !== 'FORM') {
                const names = new Set(Array.from(node.querySelectorAll('[name]'))
                    .filter(c => ['INPUT', 'SELECT', 'TEXTAREA'].includes(c.tagName)
                                 && c.type !== 'hidden')
                    .map(c => c.name));
                if (names.size === 1) return [Array.from(names)[0], error.innerText.trim()];
                if (names.size > 1) break;
                node = node.parentElement;
            }
            return ['?', error.innerText.trim()];
        })"""
    )
    return dict(pairs)


def post_forms(page: Page) -> list[str]:
    """The action of every form on the page that writes (method POST)."""
    actions: list[str] = page.evaluate(
        """() => Array.from(document.forms)
            .filter(f => (f.getAttribute('method') || 'get').toLowerCase() === 'post')
            .map(f => f.action)"""
    )
    return actions


def wait_for(check: Callable[[], bool], within: float = 10.0) -> bool:
    """Poll until ``check`` holds (a bound against hangs, not a timing assertion)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@contextmanager
def ui_on(browser: Browser, site: Site, link: str | None = None, **options: Any) -> Iterator[Ui]:
    """A fresh browser context on the site, signed in through ``link`` (steward by default)."""
    context = browser.new_context(**options)
    try:
        ui = Ui(site, context, context.new_page())
        ui.sign_in(link or site.steward_link)
        yield ui
        ui.finish()
    finally:
        with suppress(Exception):
            context.close()


def require_chromium_or_skip(reason: str) -> None:
    if os.environ.get("PLEDGER_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"Chromium is required (PLEDGER_REQUIRE_CHROMIUM=1) but {reason}")
    pytest.skip(f"no Chromium: {reason}")
