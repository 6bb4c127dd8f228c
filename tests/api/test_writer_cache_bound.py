"""The group writer's cache of aggregates is bounded by the events they hold, not only by how
many there are (issue 17 item 6): a partner object keeps every event it has had, so a count
alone let a busy server's memory grow with the history of the partners written to."""

from __future__ import annotations

import pytest

from api import writer
from tests.api.conftest import Api

WHEN = "2025-02-03T10:00:00Z"


def test_the_writers_cache_holds_at_most_its_budget_of_events(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "CACHE_EVENTS", 30)
    partners = [api.register(f"Cached {n}") for n in range(3)]
    group_writer = api.app.state.services.writer
    for partner in partners:
        for _ in range(14):
            api.append(partner, "contact_made", WHEN, channel="phone", direction="inbound")
        assert group_writer.events_held <= 30
    # The last two partners written to are kept (15 events each); the first was evicted.
    assert group_writer.events_held == 30
    # An evicted partner is loaded again from the log, and its next write follows its history.
    api.append(partners[0], "contact_made", WHEN, channel="phone", direction="inbound")
    timeline = api.read(f"/v1/partners/{partners[0]}/timeline", limit=100)["events"]
    assert len(timeline) == 16
    assert group_writer.events_held <= 30
