"""The group writer's cache of aggregates (issue 17 items 6 and 7).

* It is bounded by what they hold, not only by how many there are. A cached partner is compact:
  it keeps its state (its commitments, breaches, feedback and the ids used), not its events, so
  that a busy server's memory no longer grows with the history of the partners written to.
* A write after a restart loads its partner from the latest snapshot and the events since, and
  a retraction on a cached (compact) partner reads its history for that command only.
* With several server processes, a cached partner another process wrote to is brought up to
  the log before the next write, after the first conflict shows that others write.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest

from api import writer
from api.settings import Settings
from domain import application
from tests.api.conftest import Api, _running

WHEN = "2025-02-03T10:00:00Z"


def commit(api: Api, partner: str, commitment_id: str) -> None:
    api.append(
        partner,
        "commitment_made",
        WHEN,
        commitment_id=commitment_id,
        owed_by="us",
        description="Host a listening session",
        due_on="2025-03-01",
        resource="time",
    )


def test_the_writers_cache_holds_at_most_its_budget_of_items(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "CACHE_EVENTS", 30)
    partners = [api.register(f"Cached {n}") for n in range(3)]
    group_writer = api.app.state.services.writer
    for partner in partners:
        for n in range(7):
            commit(api, partner, f"C-{n}")
        assert group_writer.events_held <= 30
    # A partner holding 7 commitments (each a record and its id) is 15 items: the last two
    # partners written to are kept; the first was evicted.
    assert group_writer.events_held == 30
    # Events that leave no record in the state add nothing, however many there are.
    for _ in range(20):
        api.append(partners[2], "contact_made", WHEN, channel="phone", direction="inbound")
    assert group_writer.events_held == 30
    assert all(not p.entries for p in group_writer._cache.values())
    # An evicted partner is loaded again from the log, and its next write follows its history.
    api.append(partners[0], "contact_made", WHEN, channel="phone", direction="inbound")
    timeline = api.read(f"/v1/partners/{partners[0]}/timeline", limit=100)["events"]
    assert len(timeline) == 9
    assert group_writer.events_held <= 30


def test_after_a_conflict_the_writer_brings_cached_partners_up_to_other_writers(
    api: Api, settings: Settings
) -> None:
    """Two servers on one ledger writing to one partner: the first stale cache conflicts once;
    from then on each writer applies the other's new events to its cached partner before it
    writes (one query a batch), instead of conflicting and loading the partner from scratch."""
    with contextmanager(_running)(settings) as second:
        first_writer = api.app.state.services.writer
        second_writer = second.app.state.services.writer
        partner = api.register("Shared")
        api.append(partner, "contact_made", WHEN, channel="phone", direction="inbound")
        second.append(partner, "contact_made", WHEN, channel="email", direction="inbound")
        api.append(partner, "contact_made", WHEN, channel="phone", direction="inbound")
        assert first_writer.conflicts == 1  # its cached partner was one event behind
        api.append(partner, "contact_made", WHEN, channel="phone", direction="inbound")
        second.append(partner, "contact_made", WHEN, channel="email", direction="inbound")
        assert second_writer.conflicts == 1
        for _ in range(3):
            api.append(partner, "contact_made", WHEN, channel="phone", direction="inbound")
            second.append(partner, "contact_made", WHEN, channel="email", direction="inbound")
        assert (first_writer.conflicts, second_writer.conflicts) == (1, 1)
        timeline = api.read(f"/v1/partners/{partner}/timeline", limit=100)["events"]
        assert [e["version"] for e in timeline] == list(range(1, len(timeline) + 1))
        assert len(timeline) == 12
        assert api.verified()["ok"]


def test_a_write_after_a_restart_reads_the_snapshot_and_the_events_since(
    api: Api, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(application, "SNAPSHOT_EVERY", 10)
    partner = api.register("Long history")
    for _ in range(24):
        api.append(partner, "contact_made", WHEN, channel="phone", direction="inbound")
    with contextmanager(_running)(settings) as restarted:
        services = restarted.app.state.services
        recorder: Any = services.ledger.recorder
        select = recorder.select_events
        reads: list[int] = []

        def counted(*args: Any, **kwargs: Any) -> Any:
            found = select(*args, **kwargs)
            reads.append(len(found))
            return found

        monkeypatch.setattr(recorder, "select_events", counted)
        restarted.append(partner, "contact_made", WHEN, channel="email", direction="inbound")
        assert reads == [5]  # the snapshot at 20, then versions 21 to 25

        # A retraction on the cached partner reads its history for that command, and leaves it
        # compact again, with a snapshot of its refolded state.
        reads.clear()
        restarted.append(partner, "entry_retracted", WHEN, version=26, reason="mistake")
        assert reads == [26]
        cached = services.writer._cache[UUID(partner)]
        assert (cached.version, cached.entries, cached.retracted) == (27, {}, {26})
        assert [s.originator_version for s in services.ledger.snapshots.get(UUID(partner))] == [27]
        timeline = restarted.read(f"/v1/partners/{partner}/timeline", limit=100)["events"]
        assert [e["version"] for e in timeline if e["retracted"]] == [26]
        assert restarted.verified()["ok"]
