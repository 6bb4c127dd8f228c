"""Who may call what (SPEC §4, issue 14 item 5): every route of the OpenAPI document and every
page, called with every kind of credential against partners in coalition A, in B and in
neither; the allowed set must be exactly the one written here. A route or page with no rule
below fails the test, so a new one cannot ship without saying who may use it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.web.pages import router as pages_router
from tests.api.conftest import Api

READERS = {"steward", "viewer"}
ROLES = (
    "steward",
    "viewer",
    "coalition A",
    "coalition B",
    "partner P",
    "partner Q",
    "revoked",
    "expired",
    "none",
)
UNAUTHENTICATED = {"revoked", "expired", "none"}


@dataclass(frozen=True)
class Target:
    """What a templated path is filled with: a partner (in A, in B or in neither) and the
    coalition asked about."""

    partner: str  # "pa", "pb", "pn"
    coalition: str  # "A", "B"


# Each rule: (role, target) -> allowed. P is the partner in A, Q the partner in neither.
Rule = Callable[[str, Target], bool]


def readers(role: str, _: Target) -> bool:
    return role in READERS


def stewards(role: str, _: Target) -> bool:
    return role == "steward"


def anyone(_: str, __: Target) -> bool:
    return True


def _member_of(role: str, target: Target) -> bool:
    return (role, target.partner) in {("coalition A", "pa"), ("coalition B", "pb")}


def figures(role: str, target: Target) -> bool:
    """Health and its history: readers, and a coalition for its own members."""
    return role in READERS or _member_of(role, target)


def commitments(role: str, target: Target) -> bool:
    """A partner's commitments: as figures, and a partner token for its own."""
    own = (role, target.partner) in {("partner P", "pa"), ("partner Q", "pn")}
    return figures(role, target) or own


def shared_view(role: str, target: Target) -> bool:
    """What is shared with a partner: readers, and a partner token for its own (SPEC §4)."""
    own = (role, target.partner) in {("partner P", "pa"), ("partner Q", "pn")}
    return role in READERS or own


def coalition_page(role: str, target: Target) -> bool:
    return role in READERS or role == f"coalition {target.coalition}"


def auditors(role: str, _: Target) -> bool:
    """The key, checkpoints and proofs (hashes and signatures only): readers and any coalition,
    whose members check their report's evidence with them."""
    return role in READERS or role.startswith("coalition")


API_RULES: dict[tuple[str, str], Rule] = {
    ("get", "/v1/partners"): readers,
    ("post", "/v1/partners"): stewards,
    ("post", "/v1/partners/{partner_id}/events"): stewards,
    ("get", "/v1/coalitions"): readers,
    ("post", "/v1/coalitions"): stewards,
    ("post", "/v1/coalitions/{coalition_id}/members"): stewards,
    ("delete", "/v1/coalitions/{coalition_id}/members/{partner_id}"): stewards,
    ("get", "/v1/partners/{partner_id}"): readers,
    ("get", "/v1/partners/{partner_id}/timeline"): readers,
    ("get", "/v1/partners/{partner_id}/health"): figures,
    ("get", "/v1/partners/{partner_id}/health/history"): figures,
    ("get", "/v1/partners/{partner_id}/commitments"): commitments,
    ("get", "/v1/partners/{partner_id}/shared"): shared_view,
    ("post", "/v1/partners/{partner_id}/erasure"): stewards,
    ("get", "/v1/partners/{partner_id}/personal-data"): stewards,
    ("get", "/v1/accountability"): readers,
    ("get", "/v1/coalitions/{coalition_id}"): coalition_page,
    ("get", "/v1/coalitions/{coalition_id}/report"): coalition_page,
    ("get", "/v1/agenda"): readers,
    ("get", "/v1/agenda.ics"): readers,
    ("get", "/v1/review"): readers,
    ("get", "/v1/events"): readers,
    ("get", "/v1/audit/verify"): readers,
    ("post", "/v1/audit/verify"): stewards,
    ("get", "/v1/coalitions/{coalition_id}/report/evidence"): coalition_page,
    ("get", "/v1/audit/key"): auditors,
    ("get", "/v1/audit/checkpoints"): auditors,
    ("get", "/v1/audit/proof/inclusion"): auditors,
    ("get", "/v1/audit/proof/consistency"): auditors,
    ("get", "/healthz"): anyone,
}

PAGE_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/signin"): anyone,
    ("POST", "/signin"): anyone,
    ("POST", "/signout"): anyone,
    ("GET", "/"): lambda role, _: role not in UNAUTHENTICATED,  # each role lands somewhere
    ("GET", "/partners"): readers,
    ("GET", "/partners.csv"): readers,
    ("GET", "/partners/new"): stewards,
    ("POST", "/partners/new"): stewards,
    ("GET", "/partners/{partner_id}"): readers,
    ("GET", "/our-promises"): lambda role, _: role in ("partner P", "partner Q"),
    ("POST", "/partners/{partner_id}/share"): stewards,
    ("GET", "/partners/{partner_id}/erase"): stewards,
    ("GET", "/partners/{partner_id}/personal-data.json"): stewards,
    ("POST", "/partners/{partner_id}/erase"): stewards,
    ("GET", "/partners/{partner_id}/record/{event_type}"): stewards,
    ("POST", "/partners/{partner_id}/record/{event_type}"): stewards,
    ("GET", "/coalitions"): readers,
    ("GET", "/coalitions/new"): stewards,
    ("POST", "/coalitions/new"): stewards,
    ("GET", "/coalitions/{coalition_id}"): coalition_page,
    ("GET", "/coalitions/{coalition_id}/report.{fmt}"): coalition_page,
    ("POST", "/coalitions/{coalition_id}/members"): stewards,
    ("POST", "/coalitions/{coalition_id}/members/{partner_id}/leave"): stewards,
    ("GET", "/agenda"): readers,
    ("GET", "/agenda.ics"): readers,
    ("GET", "/feeds/agenda/{secret}.ics"): anyone,  # the secret in the URL is the credential
    ("GET", "/review"): readers,
    ("GET", "/audit"): readers,
    ("POST", "/audit/verify"): stewards,
    ("GET", "/audit/checkpoints/{position}.json"): readers,
    ("POST", "/audit/checkpoint"): stewards,
    ("GET", "/tokens"): stewards,
    ("POST", "/tokens"): stewards,
    ("POST", "/tokens/{token_id}/revoke"): stewards,
    ("POST", "/tokens/{token_id}/feed"): stewards,
    ("GET", "/import"): stewards,
    ("POST", "/import"): stewards,
    ("GET", "/import/template/{kind}.csv"): stewards,
    ("GET", "/export/partners.csv"): readers,  # holds contacts: personal data, as the pages do
    ("GET", "/docs"): anyone,
    ("GET", "/redoc"): anyone,
}

TARGETS = [Target(p, c) for p in ("pa", "pb", "pn") for c in ("A", "B")]


@dataclass
class World:
    ids: dict[str, str]  # pa, pb, pn, A, B, pm (a member of A, to remove), feed, token
    tokens: dict[str, str | None]  # role -> token (None: no credential)


@pytest.fixture
def world(api: Api) -> World:
    book = api.app.state.services.tokens
    a, b = api.form_coalition("Coalition A"), api.form_coalition("Coalition B")
    pa, pb, pn = (api.register(name) for name in ("In A", "In B", "In neither"))
    api.join(a, pa)
    api.join(b, pb)
    tokens: dict[str, str | None] = {
        "steward": book.issue("steward", "matrix steward"),
        "viewer": book.issue("viewer", "matrix viewer"),
        "coalition A": book.issue("coalition", "chair A", a),
        "coalition B": book.issue("coalition", "chair B", b),
        "partner P": book.issue("partner", "partner P", partner_id=pa),
        "partner Q": book.issue("partner", "partner Q", partner_id=pn),
        "revoked": book.issue("steward", "revoked steward"),
        "expired": book.issue("steward", "expired steward", expires_in=timedelta(0)),
        "none": None,
    }
    book.revoke("revoked steward")
    book.issue("viewer", "feed holder")
    feed = book.open_feed("feed holder")
    token_id = next(t.token_id for t in book.tokens() if t.name == "feed holder")
    return World({"pa": pa, "pb": pb, "pn": pn, "A": a, "B": b, "feed": feed, "token": token_id},
                 tokens)  # fmt: skip


def _fill(template: str, world: World, target: Target) -> str:
    return (
        template.replace("{partner_id}", world.ids[target.partner])
        .replace("{coalition_id}", world.ids[target.coalition])
        .replace("{event_type}", "contact_made")
        .replace("{fmt}", "csv")
        .replace("{secret}", world.ids["feed"])
        .replace("{token_id}", world.ids["token"])
        .replace("{position}", "1")
        .replace("{kind}", "partners")
    )


def test_every_api_route_has_a_rule(api: Api) -> None:
    routes = {(m, p) for p, ops in api.app.openapi()["paths"].items() for m in ops}
    assert routes == set(API_RULES), "a route without a rule (or a rule without a route)"


def test_every_page_has_a_rule() -> None:
    pages = {
        (method, str(getattr(route, "path", "")))
        for route in pages_router.routes
        for method in getattr(route, "methods", ())
        if method != "HEAD"
    }
    assert pages == set(PAGE_RULES), "a page without a rule (or a rule without a page)"


def test_the_api_allows_exactly_the_set_each_role_may_use(api: Api, world: World) -> None:
    wrong = []
    # Reads first: an allowed write (a member leaving) would change what the reads may see.
    for (method, template), rule in sorted(API_RULES.items(), key=lambda r: r[0][0] != "get"):
        for target in TARGETS:
            url = _fill(template, world, target)
            for role in ROLES:
                token = world.tokens[role]
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = api.client.request(method.upper(), url, headers=headers, json={})
                allowed = rule(role, target)
                refused = response.status_code in (401, 403)
                expected_refusal = 401 if role in UNAUTHENTICATED else 403
                if allowed == refused or (refused and response.status_code != expected_refusal):
                    wrong.append((method, url, role, allowed, response.status_code))
    assert wrong == []


def _session(api: Api, token: str | None) -> TestClient:
    client = TestClient(api.app, follow_redirects=False)
    if token is not None:
        client.get(f"/signin?token={token}")
    return client


def _csrf(client: TestClient) -> str:
    # Any page a signed-in visitor may open carries the sign-out form and its token.
    landing = client.get("/", follow_redirects=True)
    found = re.search(r'name="csrftoken" value="([^"]+)"', landing.text)
    return found.group(1) if found else ""


def test_the_pages_allow_exactly_the_set_each_role_may_use(api: Api, world: World) -> None:
    wrong: list[tuple[str, str, str, object, int]] = []
    for role in ROLES:
        client = _session(api, world.tokens[role])
        csrf = _csrf(client)
        for (method, template), rule in PAGE_RULES.items():
            if template in ("/signout", "/signin"):
                continue  # they end or start sessions, whoever asks
            for target in TARGETS[:3]:  # the page rules do not depend on the coalition asked
                url = _fill(template, world, target)
                if method == "GET":
                    response = client.get(url)
                else:
                    response = client.post(url, data={"csrftoken": csrf} if csrf else {})
                allowed = rule(role, target)
                signed_out = role in UNAUTHENTICATED and template not in ("/docs", "/redoc")
                if signed_out and not allowed:
                    # A visitor without a valid sign-in is sent to sign in, or refused a POST.
                    expected = {303} if method == "GET" else {403}
                    if response.status_code not in expected:
                        wrong.append((method, url, role, "sign-in", response.status_code))
                    continue
                refused = response.status_code == 403
                if allowed == refused:
                    wrong.append((method, url, role, allowed, response.status_code))
        client.close()
    assert wrong == []
