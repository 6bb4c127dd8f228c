"""Issue 10, item 11: heavy work stops when its client hangs up, and cannot starve the rest.

The report's work is held at a point inside it (a wrapped query) so that the tests need no
timing: one request is abandoned while held there, and two held requests fill the report's
limit while a third is refused with 503 and light requests are answered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from starlette.types import Message, Scope

from api.formats import render_report
from api.heavy import CLIENT_GONE, HEAVY_LIMITS
from projections.cancellation import WorkAbandoned, cancellation_point
from projections.folds import health_of
from projections.queries import LedgerQueries

if TYPE_CHECKING:
    from tests.api.conftest import Api

AS_OF = "2025-03-01T12:00:00Z"


@pytest.fixture
def coalition(api: Api) -> str:
    coalition_id = api.form_coalition("River Alliance")
    api.join(coalition_id, api.register("Aurora Water Cooperative"))
    return coalition_id


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The formats the report route went on to render (the work after the query)."""
    calls: list[str] = []

    def counting(fmt: str, report: dict[str, Any], **options: Any) -> bytes:
        calls.append(fmt)
        return render_report(fmt, report, **options)

    monkeypatch.setattr("api.routes.render_report", counting)
    return calls


def hold_the_report(
    monkeypatch: pytest.MonkeyPatch, hold: Callable[[], object], query: str = "_snapshots"
) -> None:
    """Run ``hold`` inside every report's query (a history's, with ``snapshot``), after the
    snapshots are read."""
    real = getattr(LedgerQueries, query)

    def held(self: LedgerQueries, *args: Any, **kwargs: Any) -> Any:
        found = real(self, *args, **kwargs)
        hold()
        return found

    monkeypatch.setattr(LedgerQueries, query, held)


def hang_up_meanwhile(gone: threading.Event) -> Callable[[], None]:
    """What the held work does: the client hangs up, then the work waits (20 s at most) until
    it is told to stop, and goes on: from there the route's own cancellation points must stop it."""

    def hold() -> None:
        gone.set()
        for _ in range(400):
            try:
                cancellation_point()
            except WorkAbandoned:
                return
            threading.Event().wait(0.05)

    return hold


def asgi_get(api: Api, path: str, query: str, *, gone: threading.Event) -> list[Message]:
    """GET ``path`` straight through the app's ASGI interface, as a server would, with a client
    that hangs up (``http.disconnect``) once ``gone`` is set; returns the messages sent."""
    token = api.steward["Authorization"].encode()
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", token)],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []
    asked = False

    async def receive() -> Message:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.to_thread.run_sync(gone.wait)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    anyio.run(api.app, scope, receive, send)
    return sent


def test_a_report_whose_client_hangs_up_stops_its_work(
    api: Api, coalition: str, rendered: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = threading.Event()
    hold_the_report(monkeypatch, hang_up_meanwhile(gone))

    sent = asgi_get(
        api, f"/v1/coalitions/{coalition}/report", f"format=html&as_of={AS_OF}", gone=gone
    )

    assert sent[0]["status"] == CLIENT_GONE
    assert rendered == []  # it stopped at a cancellation point and never went on to render the page
    heavy = api.client.get("/healthz").json()["heavy"]
    assert heavy["report"] == {"running": 0, "limit": HEAVY_LIMITS["report"], "abandoned": 1}


def test_a_health_history_whose_client_hangs_up_stops_its_work(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner_id = api.register("Long History", occurred_at="2001-01-01T00:00:00Z")
    gone = threading.Event()
    hold_the_report(monkeypatch, hang_up_meanwhile(gone), query="snapshot")
    folded: list[object] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        folded.append(args)
        return health_of(*args, **kwargs)

    monkeypatch.setattr("projections.queries.health_of", counting)

    sent = asgi_get(api, f"/v1/partners/{partner_id}/health/history", "", gone=gone)

    assert sent[0]["status"] == CLIENT_GONE
    assert folded == []  # not one of its ~300 monthly points was computed
    assert api.client.get("/healthz").json()["heavy"]["history"]["abandoned"] == 1


def test_a_report_whose_client_stays_is_answered(
    api: Api, coalition: str, rendered: list[str]
) -> None:
    response = api.get(f"/v1/coalitions/{coalition}/report", format="md", as_of=AS_OF)

    assert response.status_code == 200
    assert rendered == ["md"]
    assert api.client.get("/healthz").json()["heavy"]["report"]["abandoned"] == 0


@pytest.fixture
def reports_held(api: Api, coalition: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """As many reports as the limit allows, each held inside its query until the test ends."""
    release = threading.Event()
    hold_the_report(monkeypatch, lambda: release.wait(30))
    limit = HEAVY_LIMITS["report"]
    path = f"/v1/coalitions/{coalition}/report"
    with ThreadPoolExecutor(max_workers=limit) as pool:
        held = [pool.submit(api.get, path, None, as_of=AS_OF) for _ in range(limit)]
        try:
            for _ in range(600):
                if api.client.get("/healthz").json()["heavy"]["report"]["running"] == limit:
                    break
                threading.Event().wait(0.05)
            yield held
        finally:
            release.set()
        assert [future.result().status_code for future in held] == [200] * limit


def test_a_heavy_request_beyond_the_limit_is_refused_and_light_ones_are_answered(
    api: Api, reports_held: list[Any], coalition: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.client, "event_hooks", {"request": [], "response": []})

    one_more = api.get(f"/v1/coalitions/{coalition}/report", as_of=AS_OF)
    partners = api.get("/v1/partners")
    health = api.client.get("/healthz")

    problem = api.assert_problem(one_more, 503, "report requests are being answered already")
    assert one_more.headers["Retry-After"] == "5"
    assert problem["status"] == 503
    assert partners.status_code == 200
    assert [p["name"] for p in partners.json()["partners"]] == ["Aurora Water Cooperative"]
    assert health.json()["heavy"]["report"]["running"] == HEAVY_LIMITS["report"]
    assert all(not future.done() for future in reports_held)  # still held while we were served


def test_the_openapi_document_lists_the_heavy_routes_503(api: Api) -> None:
    """Every route bounded by api.heavy says in /openapi.json that it may answer 503
    (problem+json, with Retry-After), so that a client generated from it expects it."""
    paths = api.client.get("/openapi.json").json()["paths"]
    heavy = [
        "/v1/coalitions/{coalition_id}/report",
        "/v1/coalitions/{coalition_id}/report/evidence",
        "/v1/partners/{partner_id}/health/history",
    ]
    for path in heavy:
        busy = paths[path]["get"]["responses"]["503"]
        assert "application/problem+json" in busy["content"], path
        assert "Retry-After" in busy["headers"], path
    assert "503" not in paths["/v1/partners"]["get"]["responses"]
