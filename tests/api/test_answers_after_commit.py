"""Issue 10, items 3 and 4: once a write is committed, the answer says it was recorded.

If the views cannot show a committed event (stuck, failing), the client still gets 201 with
the usual body, and ``Pledger-Views: behind``; never a 500 that invites a retry and a second
recording. The failure is logged once, and ``/healthz`` names the event the views stopped at
and the error. On both stores.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from domain.chained import Stamp
from domain.values import FROM_STORE, PartnerRegistered

if TYPE_CHECKING:
    from tests.api.conftest import Api

BODY = {"name": "Eastside Union", "kind": "organization", "occurred_at": "2025-01-06T10:00:00Z"}


def test_a_committed_write_is_answered_201_when_the_views_cannot_show_it(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = api.app.state.services.keeper
    before = api.event_count()
    failure = f"views stuck {uuid.uuid4()}"

    def stuck(position: int, timeout: float = 2.0) -> None:
        raise RuntimeError(failure)

    monkeypatch.setattr(keeper, "has_seen", lambda position: False)
    monkeypatch.setattr(keeper, "when_seen", lambda position: None)
    monkeypatch.setattr(keeper, "wait_for", stuck)
    with caplog.at_level(logging.ERROR, logger="pledger.writer"):
        first = api.client.post("/v1/partners", json=BODY, headers=api.steward)
        second = api.client.post(
            "/v1/partners", json={**BODY, "name": "Westside Union"}, headers=api.steward
        )
    monkeypatch.undo()

    for response in (first, second):
        assert response.status_code == 201, response.text
        assert response.headers["Pledger-Views"] == "behind"
        recorded = response.json()
        assert recorded["version"] == 1
        assert recorded["type"] == "partner_registered"
    log = api.log()
    assert len(log) == before + 2  # each recorded exactly once
    assert [e["hash"] for e in log[-2:]] == [first.json()["hash"], second.json()["hash"]]
    logged = [r.getMessage() for r in caplog.records if failure in r.getMessage()]
    assert logged == [  # once, for the first of the two
        f"event at position {first.json()['position']} is recorded, but the views could not "
        f"take it: RuntimeError: {failure}"
    ]
    # The views are fine again: the header is gone.
    third = api.client.post("/v1/partners", json={**BODY, "name": "North"}, headers=api.steward)
    assert third.status_code == 201
    assert "Pledger-Views" not in third.headers


def _degraded(api: Api) -> dict[str, Any]:
    """/healthz once it reports the views stopped (the views' thread gets there on its own)."""
    for _ in range(300):
        health: dict[str, Any] = api.client.get("/healthz").json()
        if health["status"] == "degraded":
            return health
        time.sleep(0.05)
    pytest.fail(f"the views never reported their failure: {health}")


def test_an_event_the_views_cannot_take_is_named_by_healthz_and_writes_are_still_answered(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = api.app.state.services

    def refuse(view: Any, entries: Any, **_: Any) -> int:
        raise RuntimeError("the views' table is read-only")

    # On the class: on PostgreSQL the library's runner holds a view object of its own.
    monkeypatch.setattr(type(services.view), "process_entries", refuse)
    first = api.client.post("/v1/partners", json=BODY, headers=api.steward)
    assert first.status_code == 201, first.text

    health = _degraded(api)

    assert health["views_error"]["position"] == first.json()["position"]
    assert "RuntimeError: the views' table is read-only" in health["views_error"]["error"]
    before = api.event_count()
    response = api.client.post("/v1/partners", json={**BODY, "name": "After"}, headers=api.steward)
    assert response.status_code == 201, response.text
    assert response.headers["Pledger-Views"] == "behind"
    assert api.event_count() == before + 1


def test_a_nul_recorded_before_the_door_refused_it_does_not_stop_the_views(api: Api) -> None:
    # The fault of issue 10 item 1 on PostgreSQL, whose text cannot hold U+0000: the views
    # show it as U+2400 in their columns and keep going; the event and its hash are untouched.
    services = api.app.state.services
    legacy = PartnerRegistered.model_validate(
        {"name": "A\x00B", "kind": "organization", "region": "\x00"}, context=FROM_STORE
    )
    recorded = services.ledger.register_partner(
        legacy, Stamp(datetime(2025, 1, 6, tzinfo=UTC), "cli:legacy")
    )
    services.keeper.notify()

    after = api.client.post("/v1/partners", json=BODY, headers=api.steward)

    assert after.status_code == 201, after.text
    assert "Pledger-Views" not in after.headers
    health = api.client.get("/healthz").json()
    assert health["status"] == "ok", health
    assert health["views_position"] == health["log_position"]
    listed = api.read("/v1/partners", q="b")["partners"]
    assert [p["name"] for p in listed] == ["A\x00B"]  # as recorded, from the snapshot
    shown = api.read(f"/v1/partners/{recorded.stream_id}")
    assert shown["name"] == "A\x00B"
    assert api.log()[0]["hash"] == recorded.hash
    # And `pledger rebuild` folds it again from position 1.
    assert services.keeper.rebuild() == services.ledger.last_position()
    assert api.read(f"/v1/partners/{recorded.stream_id}")["name"] == "A\x00B"
