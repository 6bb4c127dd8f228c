"""Issue 10, item 4: a projection error is reported once, and the views recover by themselves.

While the views cannot take an event, ``/healthz`` names its position and the error, the log
says so once however often the keeper retries, and writes are still answered. Once the cause
is gone the views catch up without a server restart: on SQLite the polling thread retries, on
PostgreSQL the library's runner, which stopped on the error, is started again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from projections import runner as runner_module

if TYPE_CHECKING:
    from tests.api.conftest import Api

BODY = {"name": "Eastside Union", "kind": "organization", "occurred_at": "2025-01-06T10:00:00Z"}


def eventually(check: Callable[[], Any], what: str, tries: int = 600) -> Any:
    """The first truthy result of ``check``, polled every 50 ms (30 s at most, for a slow CI)."""
    for _ in range(tries):
        result = check()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"never: {what}")


def test_the_views_report_a_failure_once_and_recover_without_a_restart(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    services = api.app.state.services
    keeper = services.keeper
    monkeypatch.setattr(runner_module, "RETRY_FIRST_SECONDS", 0.05)
    monkeypatch.setattr(runner_module, "RETRY_MAX_SECONDS", 0.2)
    attempts = 0
    lock = threading.Lock()

    def refuse(view: Any, entries: Any, **_: Any) -> int:
        nonlocal attempts
        with lock:
            attempts += 1
        raise RuntimeError("the views' disk is full")

    with caplog.at_level(logging.WARNING, logger="pledger.views"):
        # On the class: on PostgreSQL the library's runner holds a view object of its own.
        monkeypatch.setattr(type(services.view), "process_entries", refuse)
        first = api.client.post("/v1/partners", json=BODY, headers=api.steward)
        assert first.status_code == 201, first.text
        position = first.json()["position"]

        health = eventually(
            lambda: (h := api.client.get("/healthz").json())["status"] == "degraded" and h,
            "healthz says degraded",
        )
        assert health["views_error"] == {
            "position": position,
            "error": "RuntimeError: the views' disk is full",
        }
        eventually(lambda: attempts >= 4, "the keeper retries")  # several times, logged once
        monkeypatch.undo()

        health = eventually(
            lambda: (h := api.client.get("/healthz").json())["status"] == "ok" and h,
            "the views recover",
        )

    assert health["views_position"] == health["log_position"] >= position
    assert "views_error" not in health
    stopped = [
        r.getMessage()
        for r in caplog.records
        if r.name == "pledger.views" and r.levelno == logging.ERROR
    ]
    assert stopped == [
        f"the views stopped at position {position}: RuntimeError: the views' disk is full "
        "(retrying)"
    ]
    assert any("taking events again" in r.getMessage() for r in caplog.records)
    if keeper.uses_runner:
        assert keeper.restarts >= 1  # a new runner follows the log again...
    later = api.client.post("/v1/partners", json={**BODY, "name": "Later"}, headers=api.steward)
    assert later.status_code == 201, later.text
    assert "Pledger-Views" not in later.headers  # ...and shows a new write at once
    assert api.read(f"/v1/partners/{first.json()['id']}")["name"] == "Eastside Union"
