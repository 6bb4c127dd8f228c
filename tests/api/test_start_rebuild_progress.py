"""A server that starts with empty views on a large log says so in /healthz while it rebuilds
them (issue 17 item 3): status "starting" and the rebuild's progress, then "ok" with the views
at the end of the log. SQLite: the test holds the ledger's write lock (the lock file every
server process shares), which keeps the rebuild from beginning until the test has looked;
tests/e2e/test_start_on_a_large_log.py covers both stores through the real command."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from api.demo import DemoPlan, build_demo
from api.settings import Settings
from api.wiring import open_ledger
from projections.locking import WriteLock
from projections.runner import REBUILD_FROM


def _health(client: TestClient) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/healthz").json()
    return body


def test_healthz_shows_the_start_up_rebuild_and_then_ok(sqlite_settings: Settings) -> None:
    settings: Settings = sqlite_settings
    ledger = open_ledger(settings)
    plan = DemoPlan(partners=60, months=200, seed=3, events_per_partner=100)
    events = sum(len(ledger.save_batch(batch)) for batch in build_demo(plan))
    ledger.close()
    assert events >= REBUILD_FROM

    lock = WriteLock(settings.db_path.with_name(settings.db_path.name + ".lock"))
    held = contextlib.ExitStack()
    held.enter_context(lock)
    try:
        with TestClient(create_app(settings)) as client:
            health = _health(client)
            assert health["status"] == "starting"
            assert health["views_rebuild"] == {"events_done": 0, "events": events}
            assert health["lag"]["events"] == events
            held.close()  # let the rebuild begin
            deadline = time.monotonic() + 60
            while _health(client)["status"] == "starting" and time.monotonic() < deadline:
                time.sleep(0.05)
            health = _health(client)
            assert health["status"] == "ok", health
            assert health["views_position"] == health["log_position"] == events
            assert "views_rebuild" not in health
    finally:
        held.close()
        lock.close()
