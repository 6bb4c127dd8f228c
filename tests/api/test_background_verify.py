"""Issue 17 item 6: the whole log is verified in the background, and `/v1/audit/verify` answers
at once from the latest run, saying when it ran and whether the log has grown since.

On both stores: a reader gets the latest run (not a new one); only a steward asks for a fresh
run; a damaged event is found by a run the server starts on its own and reported by
`/v1/audit/verify` and `/healthz`; the latest run outlives a restart; one run at a time per
ledger, a dead run's claim is taken over, and a run stops cleanly on shutdown; on PostgreSQL
two server processes (two apps) answer from the same run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.verifying import Verifications, now_text
from projections.audit import AuditReport
from tests.api.conftest import Api, _running
from tests.api.test_audit_cli import read_state, write_state

EXPLORING = "2025-02-01T10:00:00Z"


def _until(check: Callable[[], Any], what: str, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"not within {seconds} s: {what}")


def _health(api: Api) -> dict[str, Any]:
    body: dict[str, Any] = api.client.get("/healthz").json()
    return body


@pytest.fixture
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers look whether a run is due every 50 ms rather than every 5 s."""
    monkeypatch.setattr("api.verifying.POLL_SECONDS", 0.05)


def test_readers_get_the_latest_run_with_its_time_and_whether_the_log_grew_since(
    api: Api,
) -> None:
    partner = api.register("Eastside")
    fresh = api.verified()
    api.append(partner, "stage_changed", EXPLORING, stage="exploring")

    latest = api.get("/v1/audit/verify", headers=api.viewer)

    assert latest.status_code == 200
    body = latest.json()
    assert {k: body[k] for k in ("started_at", "verified_at", "position", "digest")} == {
        k: fresh[k] for k in ("started_at", "verified_at", "position", "digest")
    }
    assert body["ok"] is True
    assert (body["position"], body["log_position"], body["current"]) == (1, 2, False)
    assert isinstance(body["duration_ms"], int)  # its shape; how long is the bench's concern
    assert body["run_by"].startswith("pledger serve")
    # A steward's fresh run covers the new event.
    again = api.verified()
    assert (again["position"], again["current"]) == (2, True)
    assert again["started_at"] > fresh["verified_at"]


def test_only_a_steward_may_ask_for_a_fresh_run(api: Api) -> None:
    before = api.verified()

    refused = api.client.post("/v1/audit/verify", headers=api.viewer)

    api.assert_problem(refused, 403)
    assert api.read("/v1/audit/verify")["started_at"] == before["started_at"]


@pytest.fixture
def runs_in_a_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every background run reads the log in a child process, as on a large log."""
    monkeypatch.setattr("api.wiring.IN_PROCESS_EVENTS", -1)


def test_a_damaged_event_is_found_by_the_run_after_a_restart_and_reported_loudly(
    settings: Settings, runs_in_a_child: None
) -> None:
    with _app(settings) as api:
        partner = api.register("Eastside")
        position = api.append(partner, "stage_changed", EXPLORING, stage="exploring")["position"]
        assert api.verified()["ok"] is True
    state = read_state(settings, position)
    write_state(settings, position, state.replace(b'"exploring"', b'"partnership"'))

    with _app(settings) as api:  # the start-up run finds it
        health = _until(
            lambda: (h := _health(api))["verification"]["ok"] is False and h,
            "/healthz reports the failed verification",
        )
        body = api.read("/v1/audit/verify")

    assert health["status"] == "tampered"
    assert health["verification"]["problems"] == 1
    assert "error" not in health["verification"]
    assert body["ok"] is False
    assert [(p["position"], p["problem"]) for p in body["problems"]] == [
        (position, "stored content no longer matches its hash")
    ]


def test_the_latest_run_outlives_a_restart(settings: Settings) -> None:
    with _app(settings) as api:
        api.register("Eastside")
        kept = api.verified()

    # A server that does not verify on its own (no start-up run) still answers from it.
    app = create_app(settings, keep_views_current=False)
    with TestClient(app) as client:
        token = app.state.services.tokens.issue("viewer", "viewer:later")
        body = client.get("/v1/audit/verify", headers={"Authorization": f"Bearer {token}"})

    assert body.status_code == 200
    assert {k: body.json()[k] for k in kept if k not in ("running", "log_position")} == {
        k: v for k, v in kept.items() if k not in ("running", "log_position")
    }


def test_before_any_run_a_large_log_answers_202_with_where_and_when(settings: Settings) -> None:
    # No background runs here (keep_views_current=False), and no log is small enough to wait.
    app = create_app(replace(settings, verify_wait_events=0), keep_views_current=False)
    with TestClient(app) as client:
        services = app.state.services
        steward = {"Authorization": f"Bearer {services.tokens.issue('steward', 'steward:ana')}"}

        waiting = client.get("/v1/audit/verify", headers=steward)

        assert waiting.status_code == 202, waiting.text
        assert waiting.headers["content-type"] == "application/problem+json"
        assert waiting.headers["location"] == "/v1/audit/verify"
        assert int(waiting.headers["retry-after"]) > 0
        assert "under way" in waiting.json()["detail"]
        assert services.verifications.run_once() is not None
        assert client.get("/v1/audit/verify", headers=steward).json()["ok"] is True


def test_new_events_start_a_run_on_their_own(settings: Settings, quick_polls: None) -> None:
    with _app(replace(settings, verify_after_events=3)) as api:
        partner = api.register("Eastside")
        for day in range(1, 4):
            api.append(partner, "stage_changed", f"2025-02-0{day}T10:00:00Z", stage="exploring")

        found = _until(
            lambda: (v := api.read("/v1/audit/verify"))["position"] >= 3 and v,
            "a run over the new events",
        )

    assert found["ok"] is True


def test_one_run_at_a_time_and_a_dead_runs_claim_is_taken_over(api: Api) -> None:
    api.app.state.services.verifications.stop()  # the app's own runs, out of the way
    recorder: Any = api.app.state.services.ledger.recorder
    now = now_text()
    assert recorder.claim_verification("first", now, "2000-01-01T00:00:00.000000Z", "{}")

    assert not recorder.claim_verification(
        "second", now_text(), "2000-01-01T00:00:00.000000Z", "{}"
    )
    # Not heard of since before "stale_before": its process died; the claim is taken over.
    assert recorder.claim_verification("third", now_text(), now_text(), "{}")
    assert recorder.verification_rows()["running"]["run_id"] == "third"
    recorder.release_verification("third")
    assert "running" not in recorder.verification_rows()


def test_a_run_stops_and_drops_its_claim_when_the_server_stops(api: Api) -> None:
    services = api.app.state.services
    services.verifications.stop()  # the app's own thread, out of the way
    reading = threading.Event()

    def endless(advance: Callable[[int], None], **_: Any) -> AuditReport:
        while True:  # a log that never ends, until the server stops
            advance(1)
            reading.set()
            time.sleep(0.001)

    verifications = Verifications(
        endless,
        services.ledger.recorder,
        services.ledger.last_position,
        every_seconds=0,
        after_events=0,
        wait_events=0,
    )
    verifications.start()
    assert reading.wait(10)
    assert "running" in services.ledger.recorder.verification_rows()

    verifications.stop()

    assert "running" not in services.ledger.recorder.verification_rows()


@pytest.mark.postgres
def test_two_server_processes_answer_from_the_same_run(postgres_url: str, tmp_path: Any) -> None:
    settings = Settings(db_path=tmp_path / "unused.db", database_url=postgres_url)
    with _app(settings) as first, _app(settings) as second:
        first.register("Eastside")
        fresh = first.verified()

        shared = second.read("/v1/audit/verify")

    assert {k: shared[k] for k in ("started_at", "verified_at", "run_by", "digest")} == {
        k: fresh[k] for k in ("started_at", "verified_at", "run_by", "digest")
    }


# The app running as `pledger serve` runs it, as a context manager.
_app = contextmanager(_running)
